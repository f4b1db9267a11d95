//! The syscall buffer as the recorder and the replayer drive it, in exactly
//! the same way (docs/syscall-buffer.md; layouts in `rrtest_abi`).
//!
//! - [`init`]: the preload library's handshake. The thread-locals page and
//!   the buffer area are mapped, with one `mmap`, at their fixed addresses.
//! - [`Space`]: what the tracer knows of one address space's buffer: the
//!   hook, the stub pages, and the patched sites with their stubs.
//! - [`plan_patch`] / [`apply_patch`]: patching a syscall site. The recorder
//!   plans the patch; replay plans it again from the same code and checks
//!   that it gets the recorded bytes.
//! - [`pending_records`], [`read_records`], [`mark_flushed`],
//!   [`parse_records`]: the buffer's committed records, as the recorder
//!   flushes them and as replay reads them back.
//! - [`deliver_signal`], [`fix_frame`], [`fix_sigreturn`]: a signal
//!   handler's frame holds what the recording's held. It never shows a
//!   stub address: a signal delivered to a thread in a stub gets the
//!   frame's saved ip rewritten to the equivalent original address, and
//!   `rt_sigreturn` maps an original address that lies inside a patched
//!   region back to the stub. The trap fields of a sent signal's frame are
//!   cleared, and replay writes the mask the frame saves where it swapped
//!   a call's temporary mask in itself ([`FrameFix`]).
//!
//! - [`open_desched`], [`write_controls`]: a thread's desched event (a
//!   software context-switch counter that signals the thread when it is
//!   switched out inside a may-block buffered syscall), and the locals'
//!   [`Controls`]: the `desched_fd` that tells the hook whether to arm it,
//!   the flags, and the budget of buffered syscalls.
//!
//! One buffer serves every thread of a process: the recorder runs one thread
//! at a time and never switches away from a thread inside the buffer code,
//! and it writes the records before each event of the thread that made
//! them.
//!
//! The code is split by concern, one file each; this file holds only the
//! buffer's address, the little-endian readers the others share, and the
//! public names (re-exported, so callers name `syscallbuf::X`):
//!
//! | file | owns |
//! | --- | --- |
//! | `handshake.rs` | [`init`]: mapping the locals page and the area, the header and the reply |
//! | `space.rs` | [`Space`]: one address space's buffer state, stub lookup, [`Flushed`] |
//! | `output.rs` | the output table: [`Space`]'s entries, writing it, its trace record |
//! | `records.rs` | the committed records: flushing them ([`Pending`]), parsing them back ([`Record`]) |
//! | `control.rs` | words that steer the hook (`force_bail`, `abort_commit`, `desched_fd`), desched events, unwinding a blocked buffered syscall |
//! | `patching.rs` | planning, re-planning and applying a site's patch |
//! | `signals.rs` | signal frames as the recording had them: no stub address, the trap fields, the saved mask; the copy routine's faults ([`copy_fault_fixup`]) |
//!
//! Nothing here decides policy (when to flush, patch or arm a desched
//! event): the recorder's and the replayer's sessions do; this module
//! must not keep state of its own beyond [`Space`].

use std::io;

use rrtest_abi::{area, AREA_ADDR};
use rrtest_sys::RemoteMem;

mod control;
mod handshake;
mod output;
mod patching;
mod records;
mod signals;
mod space;

pub use control::{
    abort_untraced, blocked_in_untraced, in_interrupted_untraced, open_desched, reset_for_replay,
    set_abort_commit, set_force_bail, write_controls, Controls, DeschedEvent, DeschedSetup,
};
pub use handshake::init;
pub use output::{
    is_output_table, output_table_record, parse_output_table, update_output_table, write_output_fds,
};
pub use patching::{
    apply_ahead, apply_patch, apply_rdtsc, note_patch, plan_ahead, plan_patch, plan_rdtsc, replan,
    NotPatched, Planned,
};
pub use records::{
    committed_records, has_record, mark_flushed, output_asked, parse_records, pending_records,
    read_records, record_data_address, synthetic_tsc_records, HeadBuf, Output, Pending, Record,
    RecordData,
};
pub use signals::{
    catches, copy_fault_fixup, deliver_signal, fix_frame, fix_sigreturn, frame_needs_fix, FrameFix,
};
pub use space::{Flushed, Space};

/// The buffer's address.
pub const BUFFER_ADDR: u64 = area::buffer(AREA_ADDR, 0);

fn read_struct<const N: usize>(mem: &RemoteMem, addr: u64) -> io::Result<[u8; N]> {
    let mut b = [0u8; N];
    mem.read_exact(addr, &mut b)?;
    Ok(b)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
