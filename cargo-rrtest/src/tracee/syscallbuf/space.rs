//! [`Space`]: what the tracer knows of one address space's buffer (the
//! hook, the stub pages, the patched sites with their stubs, and the
//! recording's bookkeeping), and where an ip lies relative to them: in a
//! stub, in buffer code, strictly inside a patched region.
//!
//! It must not touch the tracee: only the other files read or write its
//! memory. The output table's methods are in `output.rs`; filling in the
//! stubs is `patching.rs`'s.

use std::collections::HashSet;

use rrtest_abi::{area, entry, syscall_ip, OutputFd, AREA_ADDR, FIXED_PAGE_ADDR, SYSCALL_INSN_LEN};
use rrtest_syscalls::patch::{Anchor, Stub, StubIp};

use super::control::Controls;
use crate::tracee::vdso;

/// The buffer state of one address space.
#[derive(Debug, Clone, Default)]
pub struct Space {
    /// The preload library's hook entry (the stubs call it).
    pub hook_entry: u64,
    /// The patched sites' stubs, in patching order.
    pub stubs: Vec<Stub>,
    /// The stub page being filled: (address, length).
    pub(super) page: Option<(u64, u64)>,
    /// Its next free byte.
    pub(super) next_stub: u64,
    /// The stub pages mapped at exec with the images of the recorder's own
    /// vDSO: the stubs of those images' sites go there, never in
    /// [`Space::page`], and never in a page mapped for them.
    pub(super) vdso_pages: Vec<VdsoStubPage>,
    /// Syscall instructions never to try again (refused, or out of range).
    pub refused: HashSet<u64>,
    /// The address space is another process's (a vfork child before its
    /// exec): use the buffer, never patch.
    pub borrowed: bool,
    /// The output table: the descriptors that write to the recorder's
    /// stdout or stderr, with their stream (recording only; see
    /// `rrtest_abi::locals::OUTPUT_FDS`).
    pub output_fds: Vec<OutputFd>,
    /// The table in the process's memory is not `output_fds`: a vfork
    /// child, which shares the memory, wrote its own; the recorder writes
    /// it again when this thread (the one that made the vfork, which the
    /// child's exec or exit releases) finishes a traced syscall (recording
    /// only).
    pub output_fds_stale: Option<i32>,
    /// The table last written to the process's memory, not yet in the
    /// trace: the recorder writes it (an output-table record) right after
    /// the event it changed at (recording only).
    pub pending_table: Option<Vec<OutputFd>>,
    /// The buffer's records already in the trace (recording only).
    pub flushed: Flushed,
    /// The locals' controls as last written (recording only): among them
    /// `desched_fd`, a thread's desched event while it runs with arming
    /// on, else [`rrtest_abi::DESCHED_POLLED`].
    pub controls_now: Controls,
    /// An rdtsc site is patched: flushed records may hold the synthesized
    /// TSC's clock reads, which the stats count (recording only).
    pub rdtsc_sites: bool,
}

/// The stub page of an image of the recorder's own vDSO
/// (`tracee::vdso::Placed`), mapped with it at exec, and how much of it
/// is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct VdsoStubPage {
    /// The image's code: start and end.
    image: (u64, u64),
    /// The page: start and end.
    page: (u64, u64),
    /// Its next free byte.
    next: u64,
}

impl VdsoStubPage {
    /// Where the next stub of `len` bytes goes, if the page has room.
    pub(super) fn room_for(&self, len: u64) -> Option<u64> {
        let at = self.next.next_multiple_of(16);
        (at + len <= self.page.1).then_some(at)
    }
}

/// How much of a buffer is already in the trace: its first `records`
/// records, `bytes` bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Bytes.
    pub bytes: u32,
    /// Records.
    pub records: u32,
}

impl Space {
    /// A fresh space after the handshake, in a process whose images of
    /// the recorder's own vDSO with their stub pages are `vdso_images`.
    pub fn new(hook_entry: u64, vdso_images: &[vdso::Placed]) -> Space {
        let vdso_pages = vdso_images
            .iter()
            .map(|placed| VdsoStubPage {
                image: placed.image(),
                page: (placed.stub_page, placed.stub_page + vdso::STUB_PAGE_LEN),
                next: placed.stub_page,
            })
            .collect();
        Space {
            hook_entry,
            vdso_pages,
            ..Space::default()
        }
    }

    /// The stub whose code contains `ip`.
    pub fn stub_at(&self, ip: u64) -> Option<&Stub> {
        self.stubs
            .iter()
            .find(|s| ip >= s.addr && ip < s.layout.end)
    }

    /// Whether the instruction right before `ip` is a `syscall` the tracer
    /// wrote: a gate of the fixed page, or a patched site's stub's (not
    /// `int $0x80`, whatever the bytes there would say).
    pub fn our_syscall_before(&self, ip: u64) -> bool {
        let gates = [entry::TRACED, entry::UNTRACED, entry::PRIVILEGED];
        if gates.iter().any(|&g| syscall_ip(g) == ip) {
            return true;
        }
        let insn = ip.wrapping_sub(SYSCALL_INSN_LEN);
        self.stub_at(insn)
            .is_some_and(|s| s.anchor == Anchor::Syscall && s.layout.syscall == insn)
    }

    /// Whether a thread at `ip` with stack pointer `rsp` is inside buffer
    /// code, where it must not be interrupted, preempted or given a signal:
    /// a stub between its setup and its traced `syscall`, the hook (it runs
    /// on the alt stack), or the fixed page (the untraced gate).
    pub fn in_buffer_code(&self, ip: u64, rsp: u64) -> bool {
        const ALT_STACK: std::ops::Range<u64> =
            AREA_ADDR + area::GUARD_SIZE..AREA_ADDR + area::ALT_STACK_TOP + 1;
        if (FIXED_PAGE_ADDR..FIXED_PAGE_ADDR + 0x1000).contains(&ip) || ALT_STACK.contains(&rsp) {
            return true;
        }
        matches!(
            self.stub_at(ip).map(|s| s.stub_to_original(ip)),
            Some(StubIp::InBuffer)
        )
    }

    /// The stub equivalent of `ip` when it lies strictly inside a patched
    /// region (where the original code is gone). The region starts at the
    /// first instruction displaced from before the `syscall` (`mov eax, NR`),
    /// if any, so the `syscall` itself is then inside.
    pub fn inside_patched(&self, ip: u64) -> Option<u64> {
        self.stubs.iter().find_map(|s| {
            let start = region_start(s);
            (ip > start && ip < s.return_addr)
                .then(|| s.original_to_stub(ip))
                .flatten()
        })
    }

    /// Puts the original bytes of every patched region back into `buf`, a
    /// copy of the memory at `addr`: what the program's code was before
    /// its sites were patched (a debugger reading code sees that, never
    /// the jumps to the stubs).
    pub fn unpatch(&self, addr: u64, buf: &mut [u8]) {
        let end = addr.saturating_add(buf.len() as u64);
        for (start, bytes) in self.stubs.iter().map(|s| &s.original) {
            let stop = start.saturating_add(bytes.len() as u64);
            let (from, to) = ((*start).max(addr), stop.min(end));
            if from < to {
                buf[(from - addr) as usize..(to - addr) as usize]
                    .copy_from_slice(&bytes[(from - start) as usize..(to - start) as usize]);
            }
        }
    }

    /// Where the next stub of `len` bytes goes, if the current page has room.
    pub(super) fn room_for(&self, len: u64) -> Option<u64> {
        let (addr, size) = self.page?;
        let at = self.next_stub.next_multiple_of(16);
        (at + len <= addr + size).then_some(at)
    }

    /// The stub page of the image of the recorder's own vDSO that `site`
    /// lies in, if it lies in one.
    pub(super) fn vdso_page_of(&self, site: u64) -> Option<&VdsoStubPage> {
        self.vdso_pages
            .iter()
            .find(|p| (p.image.0..p.image.1).contains(&site))
    }

    /// Notes a stub of `len` bytes written at `addr`: the next stub of its
    /// page goes after it. `new_page`: the page the patch mapped first, if
    /// any (never a vDSO image's stub page, which is mapped at exec).
    pub(super) fn note_stub(&mut self, addr: u64, len: u64, new_page: Option<(u64, u64)>) {
        if let Some(p) = self
            .vdso_pages
            .iter_mut()
            .find(|p| (p.page.0..p.page.1).contains(&addr))
        {
            p.next = addr + len;
            return;
        }
        if let Some(page) = new_page {
            self.page = Some(page);
        }
        self.next_stub = addr + len;
    }
}

/// Where the patched region of `stub` starts in the original code.
fn region_start(stub: &Stub) -> u64 {
    stub.layout
        .before
        .first()
        .map(|&(orig, _)| orig)
        .unwrap_or(stub.syscall_addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stub in the vDSO's stub page moves that page's cursor only: the
    /// next stub of another site still goes in the page mapped for the
    /// others, right after its last stub. Each image's sites find their
    /// own page, and nothing else does.
    #[test]
    fn vdso_stubs_keep_their_own_cursor() {
        let main = vdso::Placed::main();
        let copy = vdso::Placed::copy(0x7fff_f7fc_8000);
        let mut space = Space::new(0x7fff_f7fb_4000, &[main, copy]);
        let page = (0x7fff_effe_f000, 0x1_0000);
        // A libc site's stub maps the first stub page.
        space.note_stub(page.0, 0x50, Some(page));
        assert_eq!(space.room_for(0x60), Some(page.0 + 0x50));
        // A site in the vDSO at 0x6fffc000.
        let site = vdso::VDSO_ADDR + 0x1405;
        let vpage = space.vdso_page_of(site).expect("the main image's page");
        assert_eq!(vpage.room_for(0x60), Some(main.stub_page));
        space.note_stub(main.stub_page, 0x58, None);
        // The libc page is where it was.
        assert_eq!(space.room_for(0x60), Some(page.0 + 0x50));
        let vpage = space.vdso_page_of(site).expect("the main image's page");
        assert_eq!(vpage.room_for(0x60), Some(main.stub_page + 0x60));
        // The copy's sites go to the copy's page, below it.
        let in_copy = space
            .vdso_page_of(copy.base + 0x1415)
            .expect("the copy's page");
        assert_eq!(
            in_copy.room_for(0x60),
            Some(copy.base - vdso::STUB_PAGE_LEN)
        );
        // A full page has no room; other code has no vDSO page.
        assert_eq!(vpage.room_for(vdso::STUB_PAGE_LEN), None);
        assert!(space.vdso_page_of(0x7fff_f7dd_0000).is_none());
        assert!(space.vdso_page_of(main.stub_page).is_none());
        // A space of a process without the own vDSO's stub pages (format
        // version 3, or the vDSO hidden) has none.
        assert!(Space::new(1, &[]).vdso_page_of(site).is_none());
    }
}
