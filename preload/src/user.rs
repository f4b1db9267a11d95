//! The program's memory, touched as the kernel touches it: through a copy
//! that a fault stops instead of killing the program.
//!
//! The pointers a program passes to a syscall are the kernel's to check: a
//! bad one is `EFAULT`, and the program goes on. The hook reads some of
//! that memory itself (a name, `poll`'s array, iovecs, a message header)
//! and writes the output back, so it must not trust them either. Every
//! such access goes through [`copy`] or [`writable`], the fixed page's
//! routines ([`rrtest_abi::copy`]): a fault there is fixed up by the
//! tracer (the recorder, and replay at the same point), and the routine
//! answers the failure (the bytes it did not copy; not writable).
//!
//! Unit tests have no fixed page and no tracer: there the copy is a plain
//! loop that stops at the addresses a test declares bad
//! ([`tests_support::set_bad`]).

/// Copies `len` bytes from `src` to `dst`, where one side is the program's
/// memory; answers the bytes NOT copied (0: all): a fault at the first of
/// them stopped the copy. The bytes before it are copied.
///
/// # Safety
/// The side that is the hook's own (the record, a local) must be valid for
/// `len` bytes; the program's side may be anything. The ranges must not
/// overlap, unless they are the same byte ([`writable`]).
#[cfg(not(test))]
pub unsafe fn copy(dst: *mut u8, src: *const u8, len: usize) -> usize {
    type CopyFn = unsafe extern "C" fn(*mut u8, *const u8, usize) -> usize;
    let at = (rrtest_abi::FIXED_PAGE_ADDR + rrtest_abi::entry::COPY) as usize;
    // SAFETY: the recorder and replay map the fixed page, with the routine
    // at this entry, into every process that loads the preload; it is a
    // SysV function of this type (`rrtest_abi::copy`). A fault in it is the
    // tracer's to fix up; the caller vouches for our side of the copy.
    unsafe {
        let routine = core::mem::transmute::<usize, CopyFn>(at);
        routine(dst, src, len)
    }
}

/// The unit tests' [`copy`]: byte by byte, stopping at a declared bad
/// address (of either side).
///
/// # Safety
/// Both ranges valid for `len` bytes but where a test declared them bad.
#[cfg(test)]
pub unsafe fn copy(dst: *mut u8, src: *const u8, len: usize) -> usize {
    for i in 0..len {
        let (d, s) = (dst.wrapping_add(i), src.wrapping_add(i));
        if tests_support::is_bad(d as u64) || tests_support::is_bad(s as u64) {
            return len - i;
        }
        // SAFETY: not declared bad: valid, per the contract.
        unsafe { core::ptr::write_volatile(d, core::ptr::read_volatile(s)) };
    }
    0
}

/// Whether the program's byte at `addr` can be written (and read): the
/// fixed page's probe reads it and writes it back. The value does not
/// change; only one thread of the program runs at a time under the
/// recorder and in replay, so nothing can write it in between.
#[cfg(not(test))]
pub fn writable(addr: u64) -> bool {
    type ProbeFn = unsafe extern "C" fn(*mut u8) -> u32;
    let at = (rrtest_abi::FIXED_PAGE_ADDR + rrtest_abi::entry::PROBE) as usize;
    // SAFETY: as in `copy`: the routine is at this entry in every process
    // that loads the preload, a SysV function of this type; a fault in it
    // is the tracer's to fix up (it answers 1).
    unsafe {
        let probe = core::mem::transmute::<usize, ProbeFn>(at);
        probe(addr as *mut u8) == 0
    }
}

/// The unit tests' [`writable`]: the byte is copied onto itself.
#[cfg(test)]
pub fn writable(addr: u64) -> bool {
    let p = addr as *mut u8;
    // SAFETY: one byte onto itself; the tests' `copy` stops at a bad one.
    unsafe { copy(p, p, 1) == 0 }
}

/// Whether the first and the last byte of the program's `len` bytes at
/// `addr` can be written: a pointer that is bad from its start, or a range
/// that runs into a bad page at its end. (A hole in between is found when
/// the output is copied back.) Empty ranges are.
pub fn ends_writable(addr: u64, len: u64) -> bool {
    len == 0 || (writable(addr) && writable(addr.wrapping_add(len - 1)))
}

/// Copies the program's `N` words at `addr` into an array, or `None` if
/// any of them cannot be read.
pub fn read_words<const N: usize>(addr: u64) -> Option<[u64; N]> {
    let mut out = [0u64; N];
    // SAFETY: `out` has room for N words; the program's side may be bad.
    let left = unsafe { copy(out.as_mut_ptr() as *mut u8, addr as *const u8, N * 8) };
    (left == 0).then_some(out)
}

/// Writes `bytes` into the program's memory at `addr`; false if it
/// faulted (the bytes before the fault are written).
pub fn write_bytes(addr: u64, bytes: &[u8]) -> bool {
    // SAFETY: `bytes` is ours; the program's side may be bad.
    unsafe { copy(addr as *mut u8, bytes.as_ptr(), bytes.len()) == 0 }
}

/// The unit tests' bad addresses (per test thread).
#[cfg(test)]
pub mod tests_support {
    use std::cell::RefCell;
    use std::ops::Range;

    thread_local! {
        static BAD: RefCell<Option<Range<u64>>> = const { RefCell::new(None) };
    }

    /// Declares `range` bad for this thread's copies (replacing any).
    pub fn set_bad(range: Range<u64>) {
        BAD.with(|b| *b.borrow_mut() = Some(range));
    }

    /// No address is bad any more.
    pub fn clear_bad() {
        BAD.with(|b| *b.borrow_mut() = None);
    }

    /// Whether `addr` was declared bad.
    pub fn is_bad(addr: u64) -> bool {
        BAD.with(|b| b.borrow().as_ref().is_some_and(|r| r.contains(&addr)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_stops_the_copy_where_it_is() {
        let src = *b"0123456789";
        let mut dst = [b'.'; 10];
        let bad = dst.as_ptr() as u64 + 6;
        tests_support::set_bad(bad..bad + 100);
        // SAFETY: both arrays are 10 bytes.
        let left = unsafe { copy(dst.as_mut_ptr(), src.as_ptr(), 10) };
        assert_eq!(left, 4);
        assert_eq!(&dst, b"012345....");
        assert!(!writable(bad));
        assert!(writable(bad - 1));
        assert!(ends_writable(bad - 6, 6));
        assert!(!ends_writable(bad - 6, 7));
        assert!(ends_writable(bad, 0));
        tests_support::clear_bad();
        assert!(writable(bad));
    }

    #[test]
    fn words_and_bytes() {
        let words = [7u64, 8, 9];
        let at = words.as_ptr() as u64;
        assert_eq!(read_words::<3>(at), Some([7, 8, 9]));
        tests_support::set_bad(at + 20..at + 21);
        assert_eq!(read_words::<3>(at), None);
        assert_eq!(read_words::<2>(at), Some([7, 8]));
        let mut out = [0u8; 4];
        let o = out.as_mut_ptr() as u64;
        tests_support::set_bad(o + 2..o + 3);
        assert!(!write_bytes(o, b"abcd"));
        assert_eq!(&out, b"ab\0\0");
        tests_support::clear_bad();
        assert!(write_bytes(o, b"abcd"));
        assert_eq!(&out, b"abcd");
    }
}
