//! The x86-64 register file as the gdb server shows it: [`X86_64`] (the
//! gdbstub `Arch`), [`GdbRegs`] (one thread's registers in gdb's order) and
//! the target description XML that tells gdb that order.
//!
//! The layout is gdb's own amd64 Linux numbering, so gdb needs no guessing:
//!
//! ```text
//!  0-15  rax rbx rcx rdx rsi rdi rbp rsp r8..r15    8 bytes each
//!  16    rip                                         8
//!  17    eflags                                      4
//!  18-23 cs ss ds es fs gs                           4 each
//!  24-31 st0..st7                                   10 each (x87 extended)
//!  32-39 fctrl fstat ftag fiseg fioff foseg fooff fop  4 each
//!  40-55 xmm0..xmm15                                16 each
//!  56    mxcsr                                       4
//!  57    orig_rax                                    8
//!  58-59 fs_base gs_base                             8 each
//!  60-75 ymm0h..ymm15h (only with AVX)              16 each
//! ```
//!
//! The AVX upper halves are there when the replayed thread has AVX state
//! (the engine reads the XSAVE area): the session then serves
//! [`target_xml`]`(true)`, and every register set it sends has them.
//!
//! The x87 and SSE registers come from the 512-byte FXSAVE area that
//! `PTRACE_GETFPREGS` returns ([`GdbRegs::set_fxsave`]). This file only
//! converts; it must not read a tracee itself.

use gdbstub::arch::{Arch, Registers};
use rrtest_sys::ptrace::Regs;

/// The gdbstub architecture of the replayed program.
#[derive(Debug)]
pub enum X86_64 {}

impl Arch for X86_64 {
    type Usize = u64;
    type Registers = GdbRegs;
    // `Z0,ADDR,1`: the kind of an x86 software breakpoint is its length.
    type BreakpointKind = usize;
    type RegId = RegId;

    fn target_description_xml() -> Option<&'static str> {
        // Served by the target (`target.rs`), with or without AVX.
        None
    }
}

/// A register number gdb names in `p`/`P` packets (the table above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegId(pub usize);

impl gdbstub::arch::RegId for RegId {
    fn from_raw_id(id: usize) -> Option<(Self, Option<std::num::NonZeroUsize>)> {
        let size = reg_size(id)?;
        Some((RegId(id), std::num::NonZeroUsize::new(size)))
    }

    fn to_raw_id(&self) -> Option<usize> {
        Some(self.0)
    }
}

/// The number of registers in [`target_xml`]`(false)`.
pub const REG_COUNT: usize = 60;

/// The number of registers with the AVX upper halves.
pub const REG_COUNT_AVX: usize = 76;

/// The size in bytes of register `id`, or None past the last one.
pub fn reg_size(id: usize) -> Option<usize> {
    Some(match id {
        0..=16 => 8,
        17..=23 => 4,
        24..=31 => 10,
        32..=39 => 4,
        40..=55 => 16,
        56 => 4,
        57..=59 => 8,
        60..=75 => 16,
        _ => return None,
    })
}

/// One thread's registers, in the order of the table in the module doc.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GdbRegs {
    /// rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8..r15 (gdb's order).
    pub gpr: [u64; 16],
    /// The instruction pointer.
    pub rip: u64,
    /// The flags.
    pub eflags: u32,
    /// cs, ss, ds, es, fs, gs.
    pub seg: [u32; 6],
    /// st0..st7, 80-bit each.
    pub st: [[u8; 10]; 8],
    /// fctrl, fstat, ftag (the full tag word), fiseg, fioff, foseg, fooff, fop.
    pub x87: [u32; 8],
    /// xmm0..xmm15.
    pub xmm: [[u8; 16]; 16],
    /// The SSE control and status register.
    pub mxcsr: u32,
    /// The syscall number at a syscall stop (Linux's `orig_rax`).
    pub orig_rax: u64,
    /// The fs segment base (the thread pointer: Rust's thread locals).
    pub fs_base: u64,
    /// The gs segment base.
    pub gs_base: u64,
    /// ymm0..ymm15's upper halves, when the session shows AVX.
    pub ymm_hi: Option<[[u8; 16]; 16]>,
}

impl GdbRegs {
    /// The general registers of `PTRACE_GETREGS`.
    pub fn from_user_regs(r: &Regs) -> GdbRegs {
        GdbRegs {
            gpr: [
                r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11,
                r.r12, r.r13, r.r14, r.r15,
            ],
            rip: r.rip,
            eflags: r.eflags as u32,
            seg: [r.cs, r.ss, r.ds, r.es, r.fs, r.gs].map(|s| s as u32),
            orig_rax: r.orig_rax,
            fs_base: r.fs_base,
            gs_base: r.gs_base,
            ..GdbRegs::default()
        }
    }

    /// Takes the x87 and SSE registers from a 512-byte FXSAVE area
    /// (`struct user_fpregs_struct`). FXSAVE keeps an abridged tag word
    /// (one "in use" bit per register); gdb wants the full two-bit tags,
    /// which depend on each register's contents.
    pub fn set_fxsave(&mut self, fx: &[u8; 512]) {
        let u16_at = |o: usize| u16::from_le_bytes([fx[o], fx[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes([fx[o], fx[o + 1], fx[o + 2], fx[o + 3]]);
        let fcw = u16_at(0);
        let fsw = u16_at(2);
        let abridged = fx[4];
        for (i, st) in self.st.iter_mut().enumerate() {
            st.copy_from_slice(&fx[32 + 16 * i..32 + 16 * i + 10]);
        }
        for (i, xmm) in self.xmm.iter_mut().enumerate() {
            xmm.copy_from_slice(&fx[160 + 16 * i..160 + 16 * (i + 1)]);
        }
        let top = usize::from((fsw >> 11) & 7);
        let mut ftag: u32 = 0;
        for phys in 0..8 {
            let tag = if abridged & (1 << phys) == 0 {
                3 // empty
            } else {
                x87_tag(&self.st[(phys + 8 - top) % 8])
            };
            ftag |= tag << (2 * phys);
        }
        self.x87 = [
            u32::from(fcw),
            u32::from(fsw),
            ftag,
            u32::from(u16_at(12)), // fiseg (FCS)
            u32_at(8),             // fioff (FIP)
            u32::from(u16_at(20)), // foseg (FDS)
            u32_at(16),            // fooff (FDP)
            u32::from(u16_at(6)),  // fop
        ];
        self.mxcsr = u32_at(24);
    }
}

/// The two-bit x87 tag of a register in use: 0 valid, 1 zero, 2 special.
fn x87_tag(st: &[u8; 10]) -> u32 {
    let exponent = u16::from_le_bytes([st[8], st[9]]) & 0x7fff;
    let mantissa = u64::from_le_bytes(st[..8].try_into().unwrap_or([0; 8]));
    let integer_bit = mantissa >> 63 == 1;
    match exponent {
        0x7fff => 2,
        0 if mantissa == 0 => 1,
        0 => 2,
        _ if integer_bit => 0,
        _ => 2,
    }
}

impl Registers for GdbRegs {
    type ProgramCounter = u64;

    fn pc(&self) -> u64 {
        self.rip
    }

    fn gdb_serialize(&self, mut write_byte: impl FnMut(Option<u8>)) {
        let mut put = |bytes: &[u8]| bytes.iter().for_each(|b| write_byte(Some(*b)));
        for r in &self.gpr {
            put(&r.to_le_bytes());
        }
        put(&self.rip.to_le_bytes());
        put(&self.eflags.to_le_bytes());
        for s in &self.seg {
            put(&s.to_le_bytes());
        }
        for st in &self.st {
            put(st);
        }
        for x in &self.x87 {
            put(&x.to_le_bytes());
        }
        for x in &self.xmm {
            put(x);
        }
        put(&self.mxcsr.to_le_bytes());
        put(&self.orig_rax.to_le_bytes());
        put(&self.fs_base.to_le_bytes());
        put(&self.gs_base.to_le_bytes());
        for y in self.ymm_hi.iter().flatten() {
            put(y);
        }
    }

    fn gdb_deserialize(&mut self, bytes: &[u8]) -> Result<(), ()> {
        // Parsed so that a `G` packet is understood; the server refuses to
        // apply it (a replay's registers are the recording's).
        // gdbstub parses into a default value: the length says the layout.
        let total = |count: usize| (0..count).filter_map(reg_size).sum::<usize>();
        if bytes.len() == total(REG_COUNT_AVX) {
            self.ymm_hi.get_or_insert([[0; 16]; 16]);
        } else if bytes.len() == total(REG_COUNT) {
            self.ymm_hi = None;
        } else {
            return Err(());
        }
        let mut at = 0;
        let mut take = |n: usize| {
            let s = &bytes[at..at + n];
            at += n;
            s
        };
        let u64_of = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap_or([0; 8]));
        let u32_of = |s: &[u8]| u32::from_le_bytes(s.try_into().unwrap_or([0; 4]));
        for r in self.gpr.iter_mut() {
            *r = u64_of(take(8));
        }
        self.rip = u64_of(take(8));
        self.eflags = u32_of(take(4));
        for s in self.seg.iter_mut() {
            *s = u32_of(take(4));
        }
        for st in self.st.iter_mut() {
            st.copy_from_slice(take(10));
        }
        for x in self.x87.iter_mut() {
            *x = u32_of(take(4));
        }
        for x in self.xmm.iter_mut() {
            x.copy_from_slice(take(16));
        }
        self.mxcsr = u32_of(take(4));
        self.orig_rax = u64_of(take(8));
        self.fs_base = u64_of(take(8));
        self.gs_base = u64_of(take(8));
        if let Some(ymm) = self.ymm_hi.as_mut() {
            for y in ymm.iter_mut() {
                y.copy_from_slice(take(16));
            }
        }
        Ok(())
    }
}

impl GdbRegs {
    /// The bytes of register `id` as gdb reads them (`p` packet).
    pub fn register_bytes(&self, id: usize) -> Option<Vec<u8>> {
        let mut all = Vec::new();
        self.gdb_serialize(|b| all.push(b.unwrap_or(0)));
        let start: usize = (0..id).filter_map(reg_size).sum();
        let len = reg_size(id)?;
        all.get(start..start + len).map(<[u8]>::to_vec)
    }
}

/// The target description, with the AVX feature or without.
pub fn target_xml(avx: bool) -> String {
    let mut xml = TARGET_XML.to_owned();
    if avx {
        let at = xml.rfind("</target>").unwrap_or(xml.len());
        xml.insert_str(at, &avx_feature());
    }
    xml
}

/// gdb's `org.gnu.gdb.i386.avx` feature: ymm0h..ymm15h.
fn avx_feature() -> String {
    let mut f = String::from("  <feature name=\"org.gnu.gdb.i386.avx\">\n");
    for i in 0..16 {
        f.push_str(&format!(
            "    <reg name=\"ymm{i}h\" bitsize=\"128\" type=\"uint128\"/>\n"
        ));
    }
    f.push_str("  </feature>\n");
    f
}

/// The target description without AVX: gdb's amd64 Linux features, with
/// the segment bases. Register numbers are implicit (document order), as
/// in the table of the module doc.
const TARGET_XML: &str = r#"<?xml version="1.0"?>
<!DOCTYPE target SYSTEM "gdb-target.dtd">
<target version="1.0">
  <architecture>i386:x86-64</architecture>
  <osabi>GNU/Linux</osabi>
  <feature name="org.gnu.gdb.i386.core">
    <flags id="i386_eflags" size="4">
      <field name="CF" start="0" end="0"/>
      <field name="" start="1" end="1"/>
      <field name="PF" start="2" end="2"/>
      <field name="AF" start="4" end="4"/>
      <field name="ZF" start="6" end="6"/>
      <field name="SF" start="7" end="7"/>
      <field name="TF" start="8" end="8"/>
      <field name="IF" start="9" end="9"/>
      <field name="DF" start="10" end="10"/>
      <field name="OF" start="11" end="11"/>
      <field name="NT" start="14" end="14"/>
      <field name="RF" start="16" end="16"/>
      <field name="VM" start="17" end="17"/>
      <field name="AC" start="18" end="18"/>
      <field name="VIF" start="19" end="19"/>
      <field name="VIP" start="20" end="20"/>
      <field name="ID" start="21" end="21"/>
    </flags>
    <reg name="rax" bitsize="64" type="int64"/>
    <reg name="rbx" bitsize="64" type="int64"/>
    <reg name="rcx" bitsize="64" type="int64"/>
    <reg name="rdx" bitsize="64" type="int64"/>
    <reg name="rsi" bitsize="64" type="int64"/>
    <reg name="rdi" bitsize="64" type="int64"/>
    <reg name="rbp" bitsize="64" type="data_ptr"/>
    <reg name="rsp" bitsize="64" type="data_ptr"/>
    <reg name="r8" bitsize="64" type="int64"/>
    <reg name="r9" bitsize="64" type="int64"/>
    <reg name="r10" bitsize="64" type="int64"/>
    <reg name="r11" bitsize="64" type="int64"/>
    <reg name="r12" bitsize="64" type="int64"/>
    <reg name="r13" bitsize="64" type="int64"/>
    <reg name="r14" bitsize="64" type="int64"/>
    <reg name="r15" bitsize="64" type="int64"/>
    <reg name="rip" bitsize="64" type="code_ptr"/>
    <reg name="eflags" bitsize="32" type="i386_eflags"/>
    <reg name="cs" bitsize="32" type="int32"/>
    <reg name="ss" bitsize="32" type="int32"/>
    <reg name="ds" bitsize="32" type="int32"/>
    <reg name="es" bitsize="32" type="int32"/>
    <reg name="fs" bitsize="32" type="int32"/>
    <reg name="gs" bitsize="32" type="int32"/>
    <reg name="st0" bitsize="80" type="i387_ext"/>
    <reg name="st1" bitsize="80" type="i387_ext"/>
    <reg name="st2" bitsize="80" type="i387_ext"/>
    <reg name="st3" bitsize="80" type="i387_ext"/>
    <reg name="st4" bitsize="80" type="i387_ext"/>
    <reg name="st5" bitsize="80" type="i387_ext"/>
    <reg name="st6" bitsize="80" type="i387_ext"/>
    <reg name="st7" bitsize="80" type="i387_ext"/>
    <reg name="fctrl" bitsize="32" type="int" group="float"/>
    <reg name="fstat" bitsize="32" type="int" group="float"/>
    <reg name="ftag" bitsize="32" type="int" group="float"/>
    <reg name="fiseg" bitsize="32" type="int" group="float"/>
    <reg name="fioff" bitsize="32" type="int" group="float"/>
    <reg name="foseg" bitsize="32" type="int" group="float"/>
    <reg name="fooff" bitsize="32" type="int" group="float"/>
    <reg name="fop" bitsize="32" type="int" group="float"/>
  </feature>
  <feature name="org.gnu.gdb.i386.sse">
    <vector id="v8bf16" type="bfloat16" count="8"/>
    <vector id="v8h" type="ieee_half" count="8"/>
    <vector id="v4f" type="ieee_single" count="4"/>
    <vector id="v2d" type="ieee_double" count="2"/>
    <vector id="v16i8" type="int8" count="16"/>
    <vector id="v8i16" type="int16" count="8"/>
    <vector id="v4i32" type="int32" count="4"/>
    <vector id="v2i64" type="int64" count="2"/>
    <union id="vec128">
      <field name="v8_bfloat16" type="v8bf16"/>
      <field name="v8_half" type="v8h"/>
      <field name="v4_float" type="v4f"/>
      <field name="v2_double" type="v2d"/>
      <field name="v16_int8" type="v16i8"/>
      <field name="v8_int16" type="v8i16"/>
      <field name="v4_int32" type="v4i32"/>
      <field name="v2_int64" type="v2i64"/>
      <field name="uint128" type="uint128"/>
    </union>
    <flags id="i386_mxcsr" size="4">
      <field name="IE" start="0" end="0"/>
      <field name="DE" start="1" end="1"/>
      <field name="ZE" start="2" end="2"/>
      <field name="OE" start="3" end="3"/>
      <field name="UE" start="4" end="4"/>
      <field name="PE" start="5" end="5"/>
      <field name="DAZ" start="6" end="6"/>
      <field name="IM" start="7" end="7"/>
      <field name="DM" start="8" end="8"/>
      <field name="ZM" start="9" end="9"/>
      <field name="OM" start="10" end="10"/>
      <field name="UM" start="11" end="11"/>
      <field name="PM" start="12" end="12"/>
      <field name="FZ" start="15" end="15"/>
    </flags>
    <reg name="xmm0" bitsize="128" type="vec128"/>
    <reg name="xmm1" bitsize="128" type="vec128"/>
    <reg name="xmm2" bitsize="128" type="vec128"/>
    <reg name="xmm3" bitsize="128" type="vec128"/>
    <reg name="xmm4" bitsize="128" type="vec128"/>
    <reg name="xmm5" bitsize="128" type="vec128"/>
    <reg name="xmm6" bitsize="128" type="vec128"/>
    <reg name="xmm7" bitsize="128" type="vec128"/>
    <reg name="xmm8" bitsize="128" type="vec128"/>
    <reg name="xmm9" bitsize="128" type="vec128"/>
    <reg name="xmm10" bitsize="128" type="vec128"/>
    <reg name="xmm11" bitsize="128" type="vec128"/>
    <reg name="xmm12" bitsize="128" type="vec128"/>
    <reg name="xmm13" bitsize="128" type="vec128"/>
    <reg name="xmm14" bitsize="128" type="vec128"/>
    <reg name="xmm15" bitsize="128" type="vec128"/>
    <reg name="mxcsr" bitsize="32" type="i386_mxcsr" group="vector"/>
  </feature>
  <feature name="org.gnu.gdb.i386.linux">
    <reg name="orig_rax" bitsize="64" type="int" group="system"/>
  </feature>
  <feature name="org.gnu.gdb.i386.segments">
    <reg name="fs_base" bitsize="64" type="int"/>
    <reg name="gs_base" bitsize="64" type="int"/>
  </feature>
</target>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_xml_names_every_register_in_the_table_order() {
        let with_avx = target_xml(true);
        let avx_names: Vec<&str> = with_avx
            .lines()
            .filter_map(|l| l.trim().strip_prefix("<reg name=\""))
            .filter_map(|l| l.split('"').next())
            .collect();
        assert_eq!(avx_names.len(), REG_COUNT_AVX);
        assert_eq!([avx_names[60], avx_names[75]], ["ymm0h", "ymm15h"]);
        assert!(with_avx.trim_end().ends_with("</target>"));
        assert_eq!(target_xml(false), TARGET_XML);
        let names: Vec<&str> = TARGET_XML
            .lines()
            .filter_map(|l| l.trim().strip_prefix("<reg name=\""))
            .filter_map(|l| l.split('"').next())
            .collect();
        assert_eq!(names.len(), REG_COUNT);
        assert_eq!(
            [names[0], names[7], names[16], names[17], names[24], names[40]],
            ["rax", "rsp", "rip", "eflags", "st0", "xmm0"]
        );
        assert_eq!(&names[56..], ["mxcsr", "orig_rax", "fs_base", "gs_base"]);
        // Each bitsize matches reg_size.
        let sizes: Vec<usize> = TARGET_XML
            .lines()
            .filter(|l| l.trim().starts_with("<reg "))
            .filter_map(|l| {
                l.split("bitsize=\"")
                    .nth(1)?
                    .split('"')
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        for (id, bits) in sizes.iter().enumerate() {
            assert_eq!(reg_size(id), Some(bits / 8), "register {id}");
        }
    }

    #[test]
    fn registers_serialize_in_gdb_order_and_parse_back() {
        let mut r = GdbRegs::default();
        r.gpr[0] = 0x1122_3344_5566_7788; // rax
        r.rip = 0x401000;
        r.fs_base = 0x7fff_0000_1000;
        r.xmm[3] = [7; 16];
        let mut bytes = Vec::new();
        r.gdb_serialize(|b| bytes.push(b.unwrap()));
        assert_eq!(
            bytes.len(),
            (0..REG_COUNT).filter_map(reg_size).sum::<usize>()
        );
        assert_eq!(&bytes[..8], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(&bytes[128..136], &0x401000u64.to_le_bytes());
        assert_eq!(
            r.register_bytes(58).unwrap(),
            0x7fff_0000_1000u64.to_le_bytes()
        );
        assert_eq!(r.register_bytes(43).unwrap(), vec![7; 16]);
        assert_eq!(r.register_bytes(REG_COUNT), None);
        let mut back = GdbRegs::default();
        back.gdb_deserialize(&bytes).unwrap();
        assert_eq!(back, r);
        assert!(back.gdb_deserialize(&bytes[1..]).is_err());
        // With AVX: the upper halves follow gs_base.
        r.ymm_hi = Some([[9; 16]; 16]);
        let mut avx = Vec::new();
        r.gdb_serialize(|b| avx.push(b.unwrap()));
        assert_eq!(avx.len(), bytes.len() + 256);
        assert_eq!(r.register_bytes(75).unwrap(), vec![9; 16]);
        let mut back = GdbRegs::default();
        back.gdb_deserialize(&avx).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn fxsave_tags_follow_the_register_contents() {
        let mut fx = [0u8; 512];
        fx[0..2].copy_from_slice(&0x037fu16.to_le_bytes()); // fcw
                                                            // top = 7: physical register 7 is st0.
        fx[2..4].copy_from_slice(&(7u16 << 11).to_le_bytes());
        fx[4] = 0b1000_0001; // physical 7 (st0) and 0 (st1) in use
                             // st0 = 1.0: exponent 0x3fff, integer bit set.
        fx[32..40].copy_from_slice(&(1u64 << 63).to_le_bytes());
        fx[40..42].copy_from_slice(&0x3fffu16.to_le_bytes());
        // st1 = +0.0 (all zero).
        fx[24..28].copy_from_slice(&0x1f80u32.to_le_bytes()); // mxcsr
        fx[160] = 0xaa; // xmm0 byte 0
        let mut r = GdbRegs::default();
        r.set_fxsave(&fx);
        assert_eq!(r.x87[0], 0x037f);
        // phys 0 (st1): zero = 1; phys 7 (st0): valid = 0; others empty = 3.
        let want =
            1 | (0b11 << 2) | (0b11 << 4) | (0b11 << 6) | (0b11 << 8) | (0b11 << 10) | (0b11 << 12);
        assert_eq!(r.x87[2], want);
        assert_eq!(r.mxcsr, 0x1f80);
        assert_eq!(r.xmm[0][0], 0xaa);
        assert_eq!(r.st[0][9], 0x3f);
    }
}
