//! Memory words that tell one pass of a loop from the next: an execution
//! point's [`PointWords`].
//!
//! An execution point is found again in replay as the first pass through
//! its ip in its registers whose memory digest matches. The digest covers
//! the stack near the stack pointer, the heap and the data of mapped files
//! (`tracee::state_digest`), not the rest of the anonymous memory: the
//! arenas glibc's `malloc` gives each thread, thread stacks, large
//! allocations. A loop whose registers are the same at each turn and whose
//! progress is only there (a counter in memory another thread allocated,
//! `crossbeam-epoch`'s pin count in a thread's arena) passes the point's ip
//! in the point's registers and digest at every turn, and replay stopped
//! at the first: the wrong one, seen as a later divergence.
//!
//! The recorder reads the thread's writable private memory, of anonymous
//! mappings only the pages in memory ([`Snapshot::take`]), at two passes
//! through the point's ip, and reads it again at the second
//! ([`Snapshot::changed_words`]): the words that changed in one turn are
//! the point's words, with their values at the second pass, where the
//! point is taken. At a spin's point the two passes are the spin probe's
//! first and the one that ends it (same registers, same digest: only what
//! the digest leaves out is read), or, where nothing changed between them,
//! a snapshot from early in the thread's slice and that pass
//! (`recorder/session/points.rs`); at a return address, or where a search
//! ran out of time, the thread is let come round once more
//! (`recorder/session/points.rs`). Replay compares the words with the
//! registers (in its in-tracee filter too, so that the turns before are
//! skipped without a stop). A counter among them makes the pass unique.

use std::io;

use rrtest_trace::PointWords;

use super::{RED_ZONE, STACK_WINDOW};

/// The most memory a snapshot reads (twice per point): beyond it the point
/// goes without words.
const SNAPSHOT_LIMIT: u64 = 32 << 20;

/// The recorder's own mappings in every tracee (its vDSO, the fixed page,
/// the thread-locals page, the syscall buffers): they change between
/// passes (a buffered syscall's record) where replay's do not.
fn recorder_owned(start: u64, end: u64) -> bool {
    const OWN_START: u64 = rrtest_abi::VDSO_ADDR;
    const OWN_END: u64 = rrtest_abi::AREA_ADDR + (1 << 30);
    start < OWN_END && end > OWN_START
}

/// A mapping a snapshot reads: its range (for the one the stack pointer
/// is in, from the red zone up), and whether it is anonymous (its pages
/// not in memory are zeros, and are not read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Region {
    start: u64,
    end: u64,
    anon: bool,
}

/// A writable private mapping a snapshot may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Writable {
    start: u64,
    end: u64,
    anon: bool,
    heap: bool,
}

/// The writable private mappings in `maps` (the text of `/proc/TID/maps`)
/// but the recorder's own and the kernel's (`[vvar]`, `[vsyscall]`).
fn writable(maps: &str) -> Vec<Writable> {
    super::maps_lines(maps)
        .filter(|m| {
            m.writable_private() && !m.name.starts_with("[v") && !recorder_owned(m.start, m.end)
        })
        .map(|m| Writable {
            start: m.start,
            end: m.end,
            anon: m.anonymous(),
            heap: m.name == "[heap]",
        })
        .collect()
}

/// The regions a snapshot reads of `mappings` ([`writable`]) for a thread
/// whose stack pointer is `rsp`: each mapping; of the one `rsp` is in,
/// only from the red zone up (below it is dead, written by whatever ran
/// there last). With `outside_digest`, only what an execution point's
/// digest does not hash (`tracee::digest_ranges`): anonymous mappings but
/// `[heap]`, and of the one `rsp` is in, what is above the digest's stack
/// window.
fn regions(mappings: &[Writable], rsp: u64, outside_digest: bool) -> Vec<Region> {
    let mut out = Vec::new();
    for m in mappings {
        if outside_digest && (!m.anon || m.heap) {
            continue;
        }
        let mut start = m.start;
        if (m.start..m.end).contains(&rsp) {
            start = if outside_digest {
                rsp.saturating_add(STACK_WINDOW)
            } else {
                start.max(rsp.saturating_sub(RED_ZONE))
            };
            if start >= m.end {
                continue;
            }
        }
        out.push(Region {
            start,
            end: m.end,
            anon: m.anon,
        });
    }
    out
}

/// What the last snapshot on this OS thread parsed: a process's maps (by
/// their text's hash) as [`writable`] gave them, and its pagemap open
/// (through the thread `tid`: the threads of a process share both).
/// Threads handing work back and forth, each preempted at its spin point
/// again and again, find their maps unchanged: parsing them and opening
/// the pagemap took about 30 µs of a snapshot's 50.
struct Parsed {
    maps: u64,
    mappings: Vec<Writable>,
    pagemap: std::fs::File,
}

thread_local! {
    static PARSED: std::cell::RefCell<Option<Parsed>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` on the writable mappings in `maps` (thread `tid`'s maps'
/// text) and its process's open pagemap, parsed and opened again only
/// where the maps are not this OS thread's last ones. Returns the maps'
/// hash with `f`'s result.
fn with_parsed<R>(
    tid: i32,
    maps: &str,
    f: impl FnOnce(&[Writable], &std::fs::File) -> R,
) -> io::Result<(u64, R)> {
    let hash = xxhash_rust::xxh3::xxh3_64(maps.as_bytes());
    PARSED.with(|p| {
        let mut p = p.borrow_mut();
        if p.as_ref().is_none_or(|p| p.maps != hash) {
            *p = Some(Parsed {
                maps: hash,
                mappings: writable(maps),
                pagemap: std::fs::File::open(format!("/proc/{tid}/pagemap"))?,
            });
        }
        let p = p.as_ref().expect("parsed");
        Ok((hash, f(&p.mappings, &p.pagemap)))
    })
}

/// Runs `f` on the open pagemap of thread `tid`'s process: this OS
/// thread's last one if it is the one `regions` were parsed with (the
/// same maps, so the same process), else opened now.
fn with_pagemap<R>(tid: i32, maps: u64, f: impl FnOnce(&std::fs::File) -> R) -> io::Result<R> {
    PARSED.with(|p| match p.borrow().as_ref() {
        Some(p) if p.maps == maps => Ok(f(&p.pagemap)),
        _ => Ok(f(&std::fs::File::open(format!("/proc/{tid}/pagemap"))?)),
    })
}

const PAGE: u64 = 4096;

/// The parts of `regions` to read in a thread's memory now (its
/// `pagemap` open): a file
/// mapping whole (its pages not in memory hold the file's bytes); of an
/// anonymous one, the pages in memory or swapped out (`/proc/TID/pagemap`),
/// the others being zeros. A thread stack is mostly untouched: reading it
/// whole cost milliseconds (and mapped the zero page all over it). None
/// when the parts hold more than [`SNAPSHOT_LIMIT`] bytes.
fn pieces(pagemap: &std::fs::File, regions: &[Region]) -> io::Result<Option<Vec<(u64, u64)>>> {
    use std::os::unix::fs::FileExt;
    const PRESENT: u64 = 1 << 63;
    const SWAPPED: u64 = 1 << 62;
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut total = 0u64;
    let mut entries = Vec::new();
    for r in regions {
        let mut push = |lo: u64, hi: u64| {
            total += hi - lo;
            match out.last_mut() {
                Some(last) if last.1 == lo => last.1 = hi,
                _ => out.push((lo, hi)),
            }
        };
        if !r.anon {
            push(r.start, r.end);
            continue;
        }
        let first = r.start / PAGE;
        let pages = (r.end.div_ceil(PAGE) - first) as usize;
        entries.resize(pages * 8, 0);
        let n = pagemap.read_at(&mut entries, first * 8)?;
        for (k, e) in entries[..n - n % 8].chunks_exact(8).enumerate() {
            let e = u64::from_le_bytes(e.try_into().expect("8 bytes"));
            if e & (PRESENT | SWAPPED) != 0 {
                let page = (first + k as u64) * PAGE;
                push(page.max(r.start), (page + PAGE).min(r.end));
            }
        }
        if total > SNAPSHOT_LIMIT {
            return Ok(None);
        }
    }
    Ok((total <= SNAPSHOT_LIMIT).then_some(out))
}

/// A thread's writable private memory at one pass through an address.
pub struct Snapshot {
    /// The hash of the maps' text the regions come from.
    maps: u64,
    regions: Vec<Region>,
    read: Vec<(u64, std::ops::Range<usize>)>,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("regions", &self.regions.len())
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// The word at `addr` in memory read as `read` (pieces, address order)
/// and `bytes`; None where no piece holds it.
fn word_at(read: &[(u64, std::ops::Range<usize>)], bytes: &[u8], addr: u64) -> Option<u64> {
    let k = read.partition_point(|(lo, _)| *lo <= addr).checked_sub(1)?;
    let (lo, at) = &read[k];
    let off = at.start + (addr - lo) as usize;
    (off + 8 <= at.end).then(|| u64::from_le_bytes(bytes[off..off + 8].try_into().expect("8")))
}

impl Snapshot {
    /// Reads thread `tid`'s memory ([`regions`], [`pieces`]), its stack
    /// pointer `rsp`; None when there is too much of it, or it could not be
    /// read (the point then goes without words). With `outside_digest`,
    /// only what the digest leaves out: enough where two passes are known
    /// to have the same digest (a spin's).
    pub fn take(tid: i32, rsp: u64, outside_digest: bool) -> Option<Snapshot> {
        // The maps the point's digest just read, if it was this thread's:
        // a mapping changed since only leaves words out, or fails a read
        // that is then left out (a word's value is always read at the
        // point).
        let maps = match super::kept_maps(tid) {
            Some(maps) => maps,
            None => std::fs::read_to_string(format!("/proc/{tid}/maps")).ok()?,
        };
        let (hash, (regions, pieces)) = with_parsed(tid, &maps, |mappings, pagemap| {
            let regions = regions(mappings, rsp, outside_digest);
            let pieces = pieces(pagemap, &regions);
            (regions, pieces)
        })
        .ok()?;
        let pieces = pieces.ok()??;
        let mut bytes = Vec::new();
        let read = super::read_ranges(tid, &pieces, &mut bytes);
        Some(Snapshot {
            maps: hash,
            regions,
            read,
            bytes,
        })
    }

    /// The same memory read again, at a later pass: the first
    /// [`rrtest_trace::MAX_POINT_WORDS`] aligned 8-byte words (by address)
    /// whose value changed, with their values now. A word of an anonymous
    /// mapping that was not in memory before was zero. (A word taken for
    /// changed that did not, say one read only now, is no error: its value
    /// is the one it has at the point.)
    pub fn changed_words(&self, tid: i32) -> PointWords {
        let mut words = PointWords::NONE;
        let Ok(Ok(Some(pieces))) =
            with_pagemap(tid, self.maps, |pagemap| pieces(pagemap, &self.regions))
        else {
            return words;
        };
        let mut now = Vec::new();
        let read = super::read_ranges(tid, &pieces, &mut now);
        for (lo, at) in &read {
            // Page by page (a piece's first may be part of one): a page
            // equal to its reading before, or zeros that were not in
            // memory before, is passed over with one comparison.
            let mut addr = *lo;
            let end = lo + at.len() as u64;
            while addr < end {
                let hi = ((addr | (PAGE - 1)) + 1).min(end);
                let is = &now[at.start + (addr - lo) as usize..at.start + (hi - lo) as usize];
                let was = self.bytes_at(addr, hi);
                let same = match was {
                    Some(was) => was == is,
                    None => self.zero_before(addr) && is.iter().all(|&b| b == 0),
                };
                if !same && !self.push_changed(&mut words, addr, hi, is) {
                    return words;
                }
                addr = hi;
            }
        }
        words
    }

    /// The bytes read before at `lo..hi`, where one piece held them all.
    fn bytes_at(&self, lo: u64, hi: u64) -> Option<&[u8]> {
        let k = self
            .read
            .partition_point(|(start, _)| *start <= lo)
            .checked_sub(1)?;
        let (start, at) = &self.read[k];
        let (from, to) = (
            at.start + (lo - start) as usize,
            at.start + (hi - start) as usize,
        );
        (to <= at.end).then(|| &self.bytes[from..to])
    }

    /// Whether memory at `addr` that was not read before was zeros then:
    /// an anonymous mapping's page not in memory.
    fn zero_before(&self, addr: u64) -> bool {
        self.regions
            .iter()
            .any(|r| r.anon && (r.start..r.end).contains(&addr))
    }

    /// Adds to `words` the aligned words of `lo..hi` (bytes `is` now) whose
    /// value differs from before; false once `words` is full.
    fn push_changed(&self, words: &mut PointWords, lo: u64, hi: u64, is: &[u8]) -> bool {
        let mut addr = lo.next_multiple_of(8);
        while addr + 8 <= hi {
            let off = (addr - lo) as usize;
            let value = u64::from_le_bytes(is[off..off + 8].try_into().expect("8 bytes"));
            let was = word_at(&self.read, &self.bytes, addr)
                .or_else(|| self.zero_before(addr).then_some(0));
            if was != Some(value) && !words.push(addr, value) {
                return false;
            }
            addr += 8;
        }
        true
    }
}

/// `like`'s words as thread `tid`'s memory holds them now: the same
/// addresses, their values read; None where one cannot be read.
pub fn read_words(tid: i32, like: &PointWords) -> Option<PointWords> {
    if like.is_empty() {
        return Some(PointWords::NONE);
    }
    let ranges: Vec<(u64, u64)> = like.as_slice().iter().map(|&(a, _)| (a, a + 8)).collect();
    let mut buf = Vec::new();
    let read = super::read_ranges(tid, &ranges, &mut buf);
    if read.len() != ranges.len() {
        return None;
    }
    let mut out = PointWords::NONE;
    for (addr, at) in read {
        out.push(addr, u64::from_le_bytes(buf[at].try_into().ok()?));
    }
    Some(out)
}

/// Whether thread `tid`'s memory holds `words` now.
pub fn hold(tid: i32, words: &PointWords) -> bool {
    words.is_empty() || read_words(tid, words).is_some_and(|now| now == *words)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
555555554000-555555556000 r--p 00000000 08:01 42 /bin/prog
555555556000-555555558000 rw-p 00002000 08:01 42 /bin/prog
555555558000-555555579000 rw-p 00000000 00:00 0 [heap]
6fffc000-70000000 r-xp 00000000 00:00 0
70001000-70002000 rw-p 00000000 00:00 0
70002000-70112000 rw-p 00000000 00:00 0
7fffe0000000-7fffe0021000 rw-p 00000000 00:00 0
7fffe0021000-7fffe4000000 ---p 00000000 00:00 0
7ffff7d00000-7ffff7d02000 rw-s 00000000 00:05 7 /dev/shm/x
7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0 [stack]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]
";

    #[test]
    fn a_snapshot_reads_private_writable_memory_but_the_recorders_and_dead_stack() {
        let rsp = 0x7fff_ffff_e000;
        let region = |start, end, anon| Region { start, end, anon };
        assert_eq!(
            regions(&writable(MAPS), rsp, false),
            vec![
                region(0x5555_5555_6000, 0x5555_5555_8000, false),
                region(0x5555_5555_8000, 0x5555_5557_9000, true),
                region(0x7fff_e000_0000, 0x7fff_e002_1000, true),
                region(rsp - RED_ZONE, 0x7fff_ffff_f000, true),
            ]
        );
    }

    #[test]
    fn outside_the_digest_only_anonymous_memory_is_read() {
        let rsp = 0x7fff_ffff_e000;
        let region = |start, end, anon| Region { start, end, anon };
        assert_eq!(
            regions(&writable(MAPS), rsp, true),
            vec![region(0x7fff_e000_0000, 0x7fff_e002_1000, true)],
            "the stack window reaches the stack's end"
        );
        let low = 0x7fff_fffd_e000;
        let maps = "7ffffffbe000-7ffffffff000 rw-p 00000000 00:00 0 [stack]\n";
        assert_eq!(
            regions(&writable(maps), low, true),
            vec![region(low + STACK_WINDOW, 0x7fff_ffff_f000, true)]
        );
    }

    #[test]
    fn words_are_found_in_pieces_read() {
        let read = vec![(0x1000, 0..16), (0x3000, 16..24)];
        let bytes: Vec<u8> = (0..24).collect();
        assert_eq!(
            word_at(&read, &bytes, 0x1008),
            Some(u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]))
        );
        assert_eq!(
            word_at(&read, &bytes, 0x3000),
            Some(u64::from_le_bytes([16, 17, 18, 19, 20, 21, 22, 23]))
        );
        assert_eq!(word_at(&read, &bytes, 0x1010), None);
        assert_eq!(word_at(&read, &bytes, 0x0ff8), None);
        assert_eq!(word_at(&read, &bytes, 0x3004), None);
    }

    /// A real process: its words changed between two snapshots are found,
    /// in address order, with their new values, and read back.
    #[test]
    fn changed_words_are_found_and_read_back() {
        super::super::test_support::with_stopped_sleeper(|pid| {
            let regs = rrtest_sys::ptrace::getregs(pid)?;
            let before = Snapshot::take(pid, regs.rsp, false).expect("small");
            assert!(before.changed_words(pid).is_empty());
            // Its stack is read in part: the pages in memory.
            let stack = before
                .regions
                .iter()
                .find(|r| (r.start..r.end).contains(&regs.rsp));
            let stack = stack.expect("the stack region");
            let read: u64 = before
                .read
                .iter()
                .filter(|(lo, _)| (stack.start..stack.end).contains(lo))
                .map(|(_, at)| at.len() as u64)
                .sum();
            assert!(read > 0 && read <= stack.end - stack.start, "{read}");
            // Two words of the stack above the stack pointer.
            let mem = rrtest_sys::RemoteMem::new(pid);
            let (a, b) = ((regs.rsp + 64) & !7, (regs.rsp + 256) & !7);
            mem.write(a, &0x1122u64.to_le_bytes())?;
            mem.write(b, &u64::MAX.to_le_bytes())?;
            let words = before.changed_words(pid);
            assert_eq!(words.as_slice(), &[(a, 0x1122), (b, u64::MAX)]);
            assert!(hold(pid, &words));
            mem.write(b, &7u64.to_le_bytes())?;
            assert!(!hold(pid, &words));
            let mut unmapped = PointWords::NONE;
            unmapped.push(8, 0);
            assert_eq!(read_words(pid, &unmapped), None);
            Ok(())
        });
    }
}
