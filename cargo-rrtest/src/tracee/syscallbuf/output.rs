//! The output table: which descriptors write to the recorder's stdout or
//! stderr ([`Space`]'s entries and how the hook must see them), writing it
//! into the locals page, and the output-table record that carries it in
//! the trace so replay writes the same table at the same point.
//!
//! It must not decide when a descriptor becomes output: the recorder's
//! syscall handling does, and calls these.

use std::io;

use rrtest_abi::{locals, OutputFd, RecordHeader, THREAD_LOCALS_ADDR};
use rrtest_sys::RemoteMem;

use super::{u32_at, Space};

impl Space {
    /// Sets the output table's entry for `fd`, given the stream it writes
    /// to (1 or 2) if it is output: that stream; for fd 1 or 2 writing
    /// elsewhere `OutputFd::NOT_OUTPUT` (their writes are then buffered,
    /// not bailed); otherwise no entry. Returns whether the table changed.
    /// A full table drops the new entry (see docs/syscall-buffer.md,
    /// Limits).
    pub fn set_output_fd(&mut self, fd: i32, output: Option<i32>) -> bool {
        let before = self.output_fds.clone();
        self.output_fds.retain(|e| e.fd != fd);
        let stream = output.or((fd == 1 || fd == 2).then_some(OutputFd::NOT_OUTPUT));
        if let Some(stream) = stream {
            if self.output_fds.len() < locals::OUTPUT_FDS_MAX {
                self.output_fds.push(OutputFd { fd, stream });
            }
        }
        self.output_fds != before
    }

    /// Drops the table's entries for descriptors `lo..=hi` (a
    /// `close_range`). Returns whether the table changed.
    pub fn forget_output_fds(&mut self, lo: u32, hi: u32) -> bool {
        let n = self.output_fds.len();
        self.output_fds
            .retain(|e| !(lo..=hi).contains(&(e.fd as u32)));
        self.output_fds.len() != n
    }

    /// Drops `fd`'s entry (it was closed). Returns whether the table
    /// changed.
    pub fn forget_output_fd(&mut self, fd: i32) -> bool {
        let n = self.output_fds.len();
        self.output_fds.retain(|e| e.fd != fd);
        self.output_fds.len() != n
    }

    /// Whether `fd` is in the output table.
    pub fn is_output_fd(&self, fd: i32) -> bool {
        self.output_fds.iter().any(|e| e.fd == fd)
    }

    /// The table as the hook must see it: in a borrowed address space (a
    /// vfork child, which shares its parent's memory and so its table) every
    /// write to a listed descriptor bails (stream 0), so that neither
    /// process buffers output by the other's table; the parent's is written
    /// again when the vfork returns (`output_fds_stale`).
    pub fn output_table(&self) -> Vec<OutputFd> {
        self.output_fds
            .iter()
            .map(|e| OutputFd {
                fd: e.fd,
                stream: if self.borrowed { 0 } else { e.stream },
            })
            .collect()
    }
}

/// Writes `space`'s output table (as the hook must see it,
/// [`Space::output_table`]) into the memory of `tid`'s process, and keeps
/// it in `pending_table` for the trace ([`output_table_record`]).
pub fn update_output_table(tid: i32, space: &mut Space) -> io::Result<()> {
    let table = space.output_table();
    write_output_fds(tid, &table)?;
    space.pending_table = Some(table);
    Ok(())
}

/// `RecordHeader::nr` of an output-table record: no syscall has it.
pub(super) const OUTPUT_TABLE_NR: u16 = u16::MAX;

/// The payload of an `Event::Buffered` that carries no syscalls but the
/// output table the recorder just wrote into the process's memory (after
/// the handshake, a `dup2`-style syscall, a `close` of a listed descriptor,
/// a vfork): one record with number `0xffff` whose data is the table as
/// the locals page holds it. Replay writes the same table at the same
/// point, so that the hook takes the recording's path for every write.
pub fn output_table_record(table: &[OutputFd]) -> Vec<u8> {
    let data = output_table_bytes(table);
    let mut b = Vec::with_capacity(std::mem::size_of::<RecordHeader>() + data.len());
    b.extend_from_slice(&OUTPUT_TABLE_NR.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(&0i64.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&data);
    b
}

/// Whether an `Event::Buffered` payload is an output-table record
/// ([`output_table_record`]) rather than syscall records.
pub fn is_output_table(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && u16::from_le_bytes([bytes[0], bytes[1]]) == OUTPUT_TABLE_NR
}

/// The output table of an output-table record ([`is_output_table`]).
pub fn parse_output_table(bytes: &[u8]) -> Result<Vec<OutputFd>, String> {
    const HDR: usize = std::mem::size_of::<RecordHeader>();
    let want = HDR + 8 * locals::OUTPUT_FDS_MAX;
    if !is_output_table(bytes) || bytes.len() != want || u32_at(bytes, 4) as usize != want - HDR {
        return Err(format!(
            "not an output-table record of {want} bytes ({} bytes)",
            bytes.len()
        ));
    }
    Ok(bytes[HDR..]
        .chunks_exact(8)
        .map(|e| OutputFd {
            fd: u32_at(e, 0) as i32,
            stream: u32_at(e, 4) as i32,
        })
        .filter(|e| e.fd >= 0)
        .collect())
}

/// Writes the locals page's output table (at most `OUTPUT_FDS_MAX`
/// entries; the rest unused).
pub fn write_output_fds(tid: i32, fds: &[OutputFd]) -> io::Result<()> {
    RemoteMem::new(tid).write(
        THREAD_LOCALS_ADDR + locals::OUTPUT_FDS,
        &output_table_bytes(fds),
    )
}

fn output_table_bytes(fds: &[OutputFd]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(8 * locals::OUTPUT_FDS_MAX);
    for i in 0..locals::OUTPUT_FDS_MAX {
        let e = fds.get(i).copied().unwrap_or(OutputFd::NONE);
        bytes.extend_from_slice(&e.fd.to_le_bytes());
        bytes.extend_from_slice(&e.stream.to_le_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracee::syscallbuf::parse_records;
    use crate::tracee::syscallbuf::records::tests::record;

    #[test]
    fn the_output_table() {
        let mut space = Space::default();
        assert!(space.set_output_fd(1, Some(1)));
        assert!(space.set_output_fd(7, Some(2)));
        assert!(!space.set_output_fd(7, Some(2)));
        assert!(space.is_output_fd(7));
        // dup2 of a file over fd 1: no longer output, but listed (its
        // close must bail); any other descriptor is unlisted.
        assert!(space.set_output_fd(1, None));
        assert_eq!(
            space
                .output_fds
                .iter()
                .find(|e| e.fd == 1)
                .map(|e| e.stream),
            Some(OutputFd::NOT_OUTPUT)
        );
        assert!(space.forget_output_fd(1));
        assert!(!space.is_output_fd(1));
        assert!(!space.set_output_fd(8, None));
        assert!(space.forget_output_fds(3, u32::MAX));
        assert!(space.output_fds.is_empty());
        for fd in 0..40 {
            space.set_output_fd(fd, Some(1));
        }
        assert_eq!(space.output_fds.len(), locals::OUTPUT_FDS_MAX);
        // A vfork child's table: every listed write bails.
        space.borrowed = true;
        assert!(space.output_table().iter().all(|e| e.stream == 0));
        let bytes = output_table_bytes(&[OutputFd { fd: 1, stream: 1 }]);
        assert_eq!(bytes.len(), 8 * locals::OUTPUT_FDS_MAX);
        assert_eq!(
            &bytes[..12],
            &[1, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]
        );
    }

    #[test]
    fn output_table_records_round_trip() {
        let table = [OutputFd { fd: 1, stream: 1 }, OutputFd { fd: 9, stream: 2 }];
        let rec = output_table_record(&table);
        assert!(is_output_table(&rec));
        assert_eq!(
            parse_output_table(&rec).expect("well-formed"),
            table.to_vec()
        );
        // Not a table: ordinary records; a table among them is an error.
        assert!(!is_output_table(&record(1, 3, b"abc")));
        assert!(parse_output_table(&record(1, 3, b"abc")).is_err());
        let mut mixed = record(1, 3, b"abc");
        mixed.extend(&rec);
        assert!(parse_records(mixed.clone()).is_err());
        assert!(parse_output_table(&rec[..40]).is_err());
    }
}
