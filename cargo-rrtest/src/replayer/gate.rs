//! Replaying buffered syscalls without a stop each.
//!
//! While recording, the hook makes each buffered syscall through the fixed
//! page's untraced gate (`syscall; ret`). In replay the gate is this
//! routine instead, and the replayer loads the thread's recorded records
//! into a queue region before it resumes the thread:
//!
//! ```text
//!  gate:  push flags, rdx, rsi, rdi
//!         rcx = QUEUE_ADDR
//!         r11 = cursor; if r11 >= end, or [r11].nr != eax  -> slow
//!         if [r11].check (program output):
//!              CHECK_OUTPUT | n: unless rdx == n and the out_len recorded
//!              bytes equal those at rsi -> slow; else skip the copy
//!              CHECK_VECTORED | n: the same with the rdx iovecs at rsi
//!              (at most 64: their total, then their first bytes)
//!              CHECK_BY_REPLAYER: -> slow
//!         if out_len == ABORTED: buffer.abort_commit = 1
//!         else copy out_len bytes to the record the hook is writing
//!              (buffer + 32 + used + 24: the hook pointed the syscall's
//!              output argument there)
//!         rax = result; cursor = next record
//!         at the end of the queue: buffer.force_bail = bail_at_end
//!         pop rdi, rsi, rdx; r11 = flags; pop flags
//!         rcx = the recording gate's address after its `syscall`
//!         ret                (registers as the recording's `syscall`
//!                             left them: rax, rcx, r11 changed, no other)
//!  slow:  pop rdi, rsi, rdx, flags; syscall; ret
//!                           (a stop: the replayer answers it, or reports
//!                           the divergence)
//! ```
//!
//! The hook's own control flow is the recording's: it sees the same
//! results, the same output bytes in its record, `abort_commit` where the
//! recorder unwound it, and `force_bail` once the thread has no records
//! left (its next hook call bailed while recording, or there would be a
//! record).
//!
//! Queue region (replay only, mapped after the handshake):
//! `+0 cursor u64, +8 end u64, +16 bail_at_end u32`, records from
//! [`RECORDS_OFFSET`], each a `RecordHeader` (`nr` as a u32, no flags; in
//! `out_addr`'s place a `check` word, 0 but for program output) and its
//! output padded to 8 bytes. A program-output entry's bytes are the ones
//! written, to compare with the program's, not to copy.

use std::io;

use iced_x86::code_asm::{
    dword_ptr, eax, ecx, edi, qword_ptr, r10, r11, r8, r8d, r9, r9d, rax, rcx, rdi, rdx, rsi, rsp,
    AsmRegister64, CodeAssembler,
};
use rrtest_abi::{header, record_size, FIXED_PAGE_ADDR};

use crate::tracee::syscallbuf::{Record, BUFFER_ADDR};
use rrtest_sys::RemoteMem;

/// Where the routine goes in the fixed page (after the replayer's scratch).
pub const ROUTINE_OFFSET: u64 = 0xc00;
/// The queue region's address and size.
pub const QUEUE_ADDR: u64 = 0x7100_0000;
/// The queue region's size.
pub const QUEUE_SIZE: u64 = 8 << 20;
/// Where the records start in the region.
pub const RECORDS_OFFSET: u64 = 64;
/// `out_len` of an unwound syscall's entry.
const ABORTED: u32 = u32::MAX;
/// An entry's `check` word (its `out_addr` slot): program output of a
/// `write` or `pwrite64`, with the length asked for in the low bits; the
/// routine compares the bytes.
const CHECK_OUTPUT: u64 = 1 << 63;
/// An entry's `check` word: program output of a `writev` or `pwritev`, with
/// the length asked for in the low bits; the routine walks the iovecs.
const CHECK_VECTORED: u64 = 1 << 62;
/// An entry's `check` word: program output the replayer checks (a length
/// too large for the word): the routine takes the slow path.
const CHECK_BY_REPLAYER: u64 = 1;
/// Most iovecs the routine walks (the hook buffers no more).
const MAX_IOVECS: i32 = 64;
const RECORD_HEADER: u64 = std::mem::size_of::<rrtest_abi::RecordHeader>() as u64;
const BUFFER_HEADER: u64 = std::mem::size_of::<rrtest_abi::BufferHeader>() as u64;

/// The routine: its bytes (to write at `FIXED_PAGE_ADDR + ROUTINE_OFFSET`)
/// and the address right after its slow path's `syscall` instruction (the
/// ip of a gate stop).
pub fn routine() -> (Vec<u8>, u64) {
    let base = FIXED_PAGE_ADDR + ROUTINE_OFFSET;
    assemble(base).expect("the gate routine assembles")
}

fn assemble(base: u64) -> Result<(Vec<u8>, u64), iced_x86::IcedError> {
    let mut a = CodeAssembler::new(64)?;
    let mut slow = a.create_label();
    let mut normal = a.create_label();
    let mut copied = a.create_label();
    let mut done = a.create_label();
    let mut plain = a.create_label();
    let mut vectored = a.create_label();
    let mut sum_loop = a.create_label();
    let mut summed = a.create_label();
    let mut cmp_loop = a.create_label();
    let mut vec_match = a.create_label();
    let mut vec_mismatch = a.create_label();
    // What the vectored check uses besides rcx and r11.
    const SAVED: [AsmRegister64; 6] = [rax, rdi, rsi, r8, r9, r10];
    // What the fast path changes besides rax, rcx and r11.
    const ENTRY_SAVED: [AsmRegister64; 3] = [rdx, rsi, rdi];
    // The registers leave the routine as the recording's `syscall` left
    // them: rax the result, rcx the address after the gate's `syscall`,
    // r11 the flags at the call, the flags themselves and every other
    // register unchanged. (The hook entry sets rcx and r11 again as it
    // returns to the program, so those two are kept only to be faithful.) The flags and the registers the fast
    // path uses go on the stack first; every jump to the slow path comes
    // from this depth, and the slow path restores them, so that its stop
    // shows the syscall's own arguments.
    a.pushfq()?;
    for r in ENTRY_SAVED {
        a.push(r)?;
    }
    a.mov(rcx, QUEUE_ADDR)?;
    a.mov(r11, qword_ptr(rcx))?;
    a.cmp(r11, qword_ptr(rcx + 8))?;
    a.jae(slow)?;
    a.cmp(eax, dword_ptr(r11))?;
    a.jne(slow)?;
    // Program output: check the length asked for (rdx) and the bytes
    // (rsi: write's and pwrite64's buffer; writev's iovecs below) against
    // the recorded ones; the hook copies them into its record itself. A
    // mismatch, or an entry only the replayer checks, takes the slow path.
    a.mov(rcx, qword_ptr(r11 + 16))?;
    a.test(rcx, rcx)?;
    a.jz(plain)?;
    a.btr(rcx, 63)?;
    a.jnc(vectored)?;
    a.cmp(rcx, rdx)?;
    a.jne(slow)?;
    a.push(rsi)?;
    a.push(rdi)?;
    a.mov(rdi, rsi)?;
    a.lea(rsi, qword_ptr(r11 + RECORD_HEADER as i32))?;
    // With no bytes written, ZF stays set from the length comparison.
    a.mov(ecx, dword_ptr(r11 + 4))?;
    a.repe().cmpsb()?;
    a.pop(rdi)?;
    a.pop(rsi)?;
    a.jne(slow)?;
    a.mov(rdx, QUEUE_ADDR)?;
    a.mov(ecx, dword_ptr(r11 + 4))?;
    a.jmp(copied)?;
    a.set_label(&mut plain)?;
    a.mov(rdx, QUEUE_ADDR)?;
    a.mov(ecx, dword_ptr(r11 + 4))?;
    a.cmp(ecx, ABORTED as i32)?;
    a.jne(normal)?;
    a.mov(rsi, BUFFER_ADDR)?;
    a.mov(dword_ptr(rsi + header::ABORT_COMMIT as i32), 1u32)?;
    a.xor(ecx, ecx)?;
    a.jmp(copied)?;
    a.set_label(&mut normal)?;
    a.test(ecx, ecx)?;
    a.jz(copied)?;
    a.mov(rsi, BUFFER_ADDR)?;
    a.mov(edi, dword_ptr(rsi + header::USED as i32))?;
    a.lea(
        rdi,
        qword_ptr(rsi + rdi + (BUFFER_HEADER + RECORD_HEADER) as i32),
    )?;
    a.lea(rsi, qword_ptr(r11 + RECORD_HEADER as i32))?;
    a.push(rcx)?;
    a.rep().movsb()?;
    a.pop(rcx)?;
    a.set_label(&mut copied)?;
    a.mov(rax, qword_ptr(r11 + 8))?;
    a.add(ecx, 7)?;
    a.and(ecx, !7i32)?;
    a.lea(r11, qword_ptr(r11 + rcx + RECORD_HEADER as i32))?;
    a.mov(qword_ptr(rdx), r11)?;
    a.cmp(r11, qword_ptr(rdx + 8))?;
    a.jb(done)?;
    a.mov(ecx, dword_ptr(rdx + 16))?;
    a.mov(rsi, BUFFER_ADDR)?;
    a.mov(dword_ptr(rsi + header::FORCE_BAIL as i32), ecx)?;
    a.set_label(&mut done)?;
    for r in ENTRY_SAVED.iter().rev() {
        a.pop(*r)?;
    }
    a.mov(r11, qword_ptr(rsp))?;
    a.popfq()?;
    a.mov(rcx, rrtest_abi::syscall_ip(rrtest_abi::entry::UNTRACED))?;
    a.ret()?;

    // writev, pwritev (rsi = iovecs, rdx = count, rcx = CHECK_VECTORED |
    // the length asked for): the iovecs' total must be that length, and
    // their first out_len bytes the recorded ones. Every register but rcx,
    // r11 and the flags is restored on the way to the slow path.
    a.set_label(&mut vectored)?;
    a.btr(rcx, 62)?;
    a.jnc(slow)?;
    for r in SAVED {
        a.push(r)?;
    }
    a.cmp(rdx, MAX_IOVECS)?;
    a.ja(vec_mismatch)?;
    a.xor(eax, eax)?;
    a.xor(r8d, r8d)?;
    a.set_label(&mut sum_loop)?;
    a.cmp(r8, rdx)?;
    a.jae(summed)?;
    a.mov(r9, r8)?;
    a.shl(r9, 4)?;
    a.add(rax, qword_ptr(rsi + r9 + 8))?;
    a.jc(vec_mismatch)?;
    a.inc(r8)?;
    a.jmp(sum_loop)?;
    a.set_label(&mut summed)?;
    a.cmp(rax, rcx)?;
    a.jne(vec_mismatch)?;
    // r9: recorded bytes left to compare, r8: the next iovec, r10: iovecs
    // left, rdi: the recorded bytes.
    a.mov(r9d, dword_ptr(r11 + 4))?;
    a.lea(rdi, qword_ptr(r11 + RECORD_HEADER as i32))?;
    a.mov(r8, rsi)?;
    a.mov(r10, rdx)?;
    a.set_label(&mut cmp_loop)?;
    a.test(r9, r9)?;
    a.jz(vec_match)?;
    a.test(r10, r10)?;
    a.jz(vec_mismatch)?;
    a.dec(r10)?;
    a.mov(rsi, qword_ptr(r8))?;
    a.mov(rcx, qword_ptr(r8 + 8))?;
    a.add(r8, 16)?;
    a.cmp(rcx, r9)?;
    a.cmova(rcx, r9)?;
    a.sub(r9, rcx)?;
    a.test(rcx, rcx)?;
    a.jz(cmp_loop)?;
    a.repe().cmpsb()?;
    a.jne(vec_mismatch)?;
    a.jmp(cmp_loop)?;
    a.set_label(&mut vec_match)?;
    for r in SAVED.iter().rev() {
        a.pop(*r)?;
    }
    a.mov(rdx, QUEUE_ADDR)?;
    a.mov(ecx, dword_ptr(r11 + 4))?;
    a.jmp(copied)?;
    a.set_label(&mut vec_mismatch)?;
    for r in SAVED.iter().rev() {
        a.pop(*r)?;
    }
    a.jmp(slow)?;

    a.set_label(&mut slow)?;
    for r in ENTRY_SAVED.iter().rev() {
        a.pop(*r)?;
    }
    a.popfq()?;
    a.syscall()?;
    let mut after_syscall = a.create_label();
    a.set_label(&mut after_syscall)?;
    a.ret()?;
    let result = a.assemble_options(
        base,
        iced_x86::BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS,
    )?;
    let stop_ip = result.label_ip(&after_syscall)?;
    Ok((result.inner.code_buffer, stop_ip))
}

/// Writes the routine into the fixed page of thread `tid`'s fresh image and
/// points the untraced entry at it. Returns the ip of a gate stop.
pub fn install(tid: i32) -> io::Result<u64> {
    let (code, stop_ip) = routine();
    let mem = RemoteMem::new(tid);
    let at = FIXED_PAGE_ADDR + ROUTINE_OFFSET;
    mem.write(at, &code)?;
    let entry = FIXED_PAGE_ADDR + rrtest_abi::entry::UNTRACED;
    let rel = (at as i64 - (entry as i64 + 5)) as i32;
    let mut jmp = vec![0xe9];
    jmp.extend_from_slice(&rel.to_le_bytes());
    mem.write(entry, &jmp)?;
    Ok(stop_ip)
}

/// Serializes the front of a thread's queue for the region: returns the
/// bytes, the end offset (in the bytes) of each record written, and
/// whether every entry fit.
pub fn serialize<'a>(entries: impl Iterator<Item = Entry<'a>>) -> (Vec<u8>, Vec<usize>, bool) {
    let room = (QUEUE_SIZE - RECORDS_OFFSET) as usize;
    let mut out = Vec::new();
    let mut ends = Vec::new();
    for e in entries {
        let (nr, out_len, result, data): (i64, u32, i64, &[u8]) = match e {
            Entry::Done(r) => (r.nr, r.data.len() as u32, r.result, &r.data[..]),
            Entry::Aborted { nr } => (nr, ABORTED, -(libc::EINTR as i64), &[]),
        };
        let check = match e {
            Entry::Done(Record {
                output: Some(out),
                nr,
                ..
            }) if out.asked < CHECK_VECTORED => match *nr {
                libc::SYS_write | libc::SYS_pwrite64 => CHECK_OUTPUT | out.asked,
                libc::SYS_writev | libc::SYS_pwritev => CHECK_VECTORED | out.asked,
                _ => CHECK_BY_REPLAYER,
            },
            Entry::Done(Record {
                output: Some(_), ..
            }) => CHECK_BY_REPLAYER,
            _ => 0,
        };
        let size = record_size(data.len() as u32) as usize;
        if out.len() + size > room {
            return (out, ends, false);
        }
        out.extend_from_slice(&(nr as u32).to_le_bytes());
        out.extend_from_slice(&out_len.to_le_bytes());
        out.extend_from_slice(&result.to_le_bytes());
        out.extend_from_slice(&check.to_le_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(8), 0);
        ends.push(out.len());
    }
    (out, ends, true)
}

/// A queue entry, as [`serialize`] takes it.
#[derive(Debug, Clone, Copy)]
pub enum Entry<'a> {
    /// A completed buffered syscall.
    Done(&'a Record),
    /// An unwound one.
    Aborted {
        /// Its number.
        nr: i64,
    },
}

/// Loads serialized records into thread `tid`'s queue region.
pub fn load(tid: i32, bytes: &[u8], complete: bool) -> io::Result<()> {
    let mem = RemoteMem::new(tid);
    let start = QUEUE_ADDR + RECORDS_OFFSET;
    mem.write(start, bytes)?;
    let mut header = Vec::with_capacity(20);
    header.extend_from_slice(&start.to_le_bytes());
    header.extend_from_slice(&(start + bytes.len() as u64).to_le_bytes());
    header.extend_from_slice(&u32::from(complete).to_le_bytes());
    mem.write(QUEUE_ADDR, &header)
}

/// How many bytes of the loaded records thread `tid` consumed.
pub fn consumed(tid: i32) -> io::Result<u64> {
    let mut raw = [0u8; 8];
    RemoteMem::new(tid).read_exact(QUEUE_ADDR, &mut raw)?;
    Ok(u64::from_le_bytes(raw).saturating_sub(QUEUE_ADDR + RECORDS_OFFSET))
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions, Mnemonic};

    #[test]
    fn the_routine_decodes_and_ends_in_the_slow_path() {
        let base = FIXED_PAGE_ADDR + ROUTINE_OFFSET;
        let (code, stop_ip) = routine();
        assert!(code.len() < 0x400 - 16, "fits in the fixed page");
        let mut d = Decoder::with_ip(64, &code, base, DecoderOptions::NONE);
        let insns: Vec<_> = d.iter().collect();
        assert!(insns.iter().all(|i| !i.is_invalid()));
        let syscall = insns
            .iter()
            .find(|i| i.mnemonic() == Mnemonic::Syscall)
            .expect("a slow path");
        assert_eq!(syscall.next_ip(), stop_ip);
        assert_eq!(insns.last().map(|i| i.mnemonic()), Some(Mnemonic::Ret));
        // Everything it writes is in the queue region or the buffer header.
        assert!(insns.iter().any(|i| i.mnemonic() == Mnemonic::Movsb));
    }

    #[test]
    fn serialized_records_have_the_buffer_layout() {
        let a = Record {
            nr: 0,
            result: 3,
            data: b"abc".to_vec().into(),
            output: None,
        };
        let b = Record {
            nr: 39,
            result: 77,
            ..Record::default()
        };
        let (bytes, ends, complete) =
            serialize([Entry::Done(&a), Entry::Aborted { nr: 1 }, Entry::Done(&b)].into_iter());
        assert!(complete);
        assert_eq!(ends, vec![32, 56, 80]);
        assert_eq!(&bytes[24..27], b"abc");
        assert_eq!(
            u32::from_le_bytes(bytes[36..40].try_into().unwrap()),
            ABORTED
        );
        assert_eq!(
            i64::from_le_bytes(bytes[40..48].try_into().unwrap()),
            -(libc::EINTR as i64)
        );
        assert_eq!(
            crate::tracee::syscallbuf::parse_records(bytes[56..].to_vec()).unwrap(),
            vec![b]
        );
        // Plain entries have no check word.
        assert_eq!(&bytes[16..24], &[0; 8]);
    }

    #[test]
    fn output_entries_carry_their_check_word() {
        use crate::tracee::syscallbuf::Output;
        let out = |nr, asked| Record {
            nr,
            result: 5,
            data: b"hello".to_vec().into(),
            output: Some(Output { stream: 1, asked }),
        };
        let (w, v) = (out(libc::SYS_write, 6), out(libc::SYS_writev, 9));
        let (bytes, ends, _) = serialize([Entry::Done(&w), Entry::Done(&v)].into_iter());
        assert_eq!(ends, vec![32, 64]);
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        assert_eq!(word(16), CHECK_OUTPUT | 6);
        assert_eq!(&bytes[24..29], b"hello", "the bytes written, to compare");
        assert_eq!(word(32 + 16), CHECK_VECTORED | 9);
    }
}
