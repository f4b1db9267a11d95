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
//! The recorder, about to take such a point, reads the thread's writable
//! private memory ([`Snapshot::take`]), lets the thread come round to the
//! same ip with the same stack pointer once more, and reads it again
//! ([`Snapshot::changed_words`]): the words that changed in one turn are
//! the point's words, with their values at the second pass, where the
//! point is taken. Replay compares them with the registers (in its
//! in-tracee filter too, so that the turns before are skipped without a
//! stop). A counter among them makes the pass unique.

use std::io;

use rrtest_trace::PointWords;

use super::RED_ZONE;

/// The most memory a snapshot reads: beyond it the point goes without
/// words (reading costs about a millisecond per 10 MB here).
const SNAPSHOT_LIMIT: u64 = 32 << 20;

/// The recorder's own mappings in every tracee (its vDSO, the fixed page,
/// the thread-locals page, the syscall buffers): they change between
/// passes (a buffered syscall's record) where replay's do not.
fn recorder_owned(start: u64, end: u64) -> bool {
    const OWN_START: u64 = rrtest_abi::VDSO_ADDR;
    const OWN_END: u64 = rrtest_abi::AREA_ADDR + (1 << 30);
    start < OWN_END && end > OWN_START
}

/// The ranges a snapshot reads, from `maps` (the text of
/// `/proc/TID/maps`) for a thread whose stack pointer is `rsp`: every
/// writable private mapping but the recorder's own and the kernel's
/// (`[vvar]`, `[vsyscall]`); in the one `rsp` is in, only from the red
/// zone up (below it is dead, written by whatever ran there last). None
/// when they hold more than [`SNAPSHOT_LIMIT`] bytes.
fn ranges(maps: &str, rsp: u64) -> Option<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    let mut total = 0u64;
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let (Some(range), Some(perms)) = (parts.next(), parts.next()) else {
            continue;
        };
        if !(perms.starts_with("rw") && perms.ends_with('p')) {
            continue;
        }
        let name = parts.nth(3).unwrap_or("");
        if name.starts_with("[v") {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(mut start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16))
        else {
            continue;
        };
        if recorder_owned(start, end) {
            continue;
        }
        if (start..end).contains(&rsp) {
            start = start.max(rsp.saturating_sub(RED_ZONE));
        }
        total += end - start;
        if total > SNAPSHOT_LIMIT {
            return None;
        }
        out.push((start, end));
    }
    Some(out)
}

/// A thread's writable private memory at one pass through an address.
pub struct Snapshot {
    ranges: Vec<(u64, u64)>,
    read: Vec<(u64, std::ops::Range<usize>)>,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("ranges", &self.ranges.len())
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl Snapshot {
    /// Reads thread `tid`'s memory ([`ranges`]), its stack pointer `rsp`;
    /// None when there is too much of it.
    pub fn take(tid: i32, rsp: u64) -> io::Result<Option<Snapshot>> {
        let maps = std::fs::read_to_string(format!("/proc/{tid}/maps"))?;
        let Some(ranges) = ranges(&maps, rsp) else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        let read = super::read_ranges(tid, &ranges, &mut bytes);
        Ok(Some(Snapshot {
            ranges,
            read,
            bytes,
        }))
    }

    /// The same memory read again, at a later pass: the first
    /// [`rrtest_trace::MAX_POINT_WORDS`] aligned 8-byte words (by address) whose value
    /// changed, with their values now. A range read only once is left out.
    pub fn changed_words(&self, tid: i32) -> PointWords {
        let mut now = Vec::new();
        let read = super::read_ranges(tid, &self.ranges, &mut now);
        let mut words = PointWords::NONE;
        for (start, was) in &self.read {
            let Some((_, is)) = read.iter().find(|(s, _)| s == start) else {
                continue;
            };
            let (was, is) = (&self.bytes[was.clone()], &now[is.clone()]);
            if was == is || was.len() != is.len() {
                continue;
            }
            // Ranges start page-aligned, but for the stack's (the red zone's
            // start): words at 8-byte-aligned addresses.
            let skip = ((8 - start % 8) % 8) as usize;
            for (k, (a, b)) in was[skip.min(was.len())..]
                .chunks_exact(8)
                .zip(is[skip.min(is.len())..].chunks_exact(8))
                .enumerate()
            {
                if a != b {
                    let addr = start + skip as u64 + 8 * k as u64;
                    let value = u64::from_le_bytes(b.try_into().expect("8 bytes"));
                    if !words.push(addr, value) {
                        return words;
                    }
                }
            }
        }
        words
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
        let r = ranges(MAPS, rsp).expect("small enough");
        assert_eq!(
            r,
            vec![
                (0x5555_5555_6000, 0x5555_5555_8000),
                (0x5555_5555_8000, 0x5555_5557_9000),
                (0x7fff_e000_0000, 0x7fff_e002_1000),
                (rsp - RED_ZONE, 0x7fff_ffff_f000),
            ]
        );
    }

    #[test]
    fn too_much_memory_gives_no_snapshot() {
        let maps = "7f0000000000-7f0004000000 rw-p 00000000 00:00 0\n";
        assert_eq!(ranges(maps, 0), None);
        let maps = "7f0000000000-7f0001000000 rw-p 00000000 00:00 0\n";
        assert_eq!(ranges(maps, 0).map(|r| r.len()), Some(1));
    }

    /// A real process: its words changed between two snapshots are found,
    /// in address order, with their new values, and read back.
    #[test]
    fn changed_words_are_found_and_read_back() {
        super::super::test_support::with_stopped_sleeper(|pid| {
            let regs = rrtest_sys::ptrace::getregs(pid)?;
            let before = Snapshot::take(pid, regs.rsp)?.expect("small");
            assert!(before.changed_words(pid).is_empty());
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
