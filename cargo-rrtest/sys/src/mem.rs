//! Reading and writing another process's memory.
//!
//! Reads use `process_vm_readv` (one syscall, no file descriptor). Writes try
//! `process_vm_writev` and fall back to `/proc/PID/mem`, which a ptrace tracer
//! may use to write read-only pages (code, the fixed page, the vDSO).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;

use nix::sys::uio::{process_vm_readv, process_vm_writev, RemoteIoVec};
use nix::unistd::Pid;

/// Reads tracee memory: implemented by [`RemoteMem`] (over
/// `process_vm_readv`) and by byte buffers in tests. The syscall table
/// (`rrtest-syscalls`) describes a syscall's outputs through it.
pub trait MemReader {
    /// Fills `buf` from tracee address `addr`.
    fn read(&self, addr: u64, buf: &mut [u8]) -> std::io::Result<()>;

    /// Reads a little-endian u64 at `addr`.
    fn read_u64(&self, addr: u64) -> std::io::Result<u64> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads a little-endian u32 at `addr`.
    fn read_u32(&self, addr: u64) -> std::io::Result<u32> {
        let mut b = [0u8; 4];
        self.read(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// The text of the tracee's `/proc/TID/fdinfo/FD` (for a bpf map its
    /// key and value sizes), or `None` when it has no such descriptor or
    /// this reader is no tracee.
    fn fd_info(&self, _fd: i32) -> Option<String> {
        None
    }

    /// The text of `/proc/sysvipc/KIND` (`shm`, `sem`, `msg`) as the
    /// tracee sees it, or `None` when the tracee has an IPC namespace of
    /// its own (that file shows the reader's) or this reader is no tracee.
    fn sysv_ipc(&self, _kind: &str) -> Option<String> {
        None
    }
}

/// The address space of a stopped tracee, named by one of its thread ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteMem {
    pid: i32,
}

impl RemoteMem {
    /// The address space of thread `tid`.
    pub fn new(tid: i32) -> Self {
        RemoteMem { pid: tid }
    }

    /// Reads exactly `buf.len()` bytes at `addr`.
    pub fn read_exact(&self, addr: u64, buf: &mut [u8]) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let remote = [RemoteIoVec {
            base: addr as usize,
            len: buf.len(),
        }];
        let n = process_vm_readv(
            Pid::from_raw(self.pid),
            &mut [io::IoSliceMut::new(buf)],
            &remote,
        );
        match n {
            Ok(n) if n == buf.len() => Ok(()),
            // A partial read (the range crosses into an unreadable page), or
            // a page process_vm_readv refuses: /proc/PID/mem can read more.
            _ => self.proc_mem(false)?.read_exact_at(buf, addr),
        }
    }

    /// Reads exactly `buf.len()` bytes at `addr` as [`Self::read_exact`]
    /// does and, in the same `process_vm_readv`, the 4-byte words at
    /// `addrs` into `words` (as many). Returns whether the words were
    /// read: where that call falls short they are left as they were, and
    /// only `buf` is read (its own fallback).
    pub fn read_exact_and_words(
        &self,
        addr: u64,
        buf: &mut [u8],
        addrs: &[u64],
        words: &mut [u32],
    ) -> io::Result<bool> {
        assert_eq!(addrs.len(), words.len(), "a word for each address");
        if addrs.is_empty() || buf.is_empty() || addrs.len() > 64 {
            self.read_exact(addr, buf)?;
            return Ok(false);
        }
        let mut raw = [[0u8; 4]; 64];
        let raw = &mut raw[..addrs.len()];
        let mut remote = Vec::with_capacity(addrs.len() + 1);
        remote.push(RemoteIoVec {
            base: addr as usize,
            len: buf.len(),
        });
        remote.extend(addrs.iter().map(|&a| RemoteIoVec {
            base: a as usize,
            len: 4,
        }));
        let total = buf.len() + 4 * addrs.len();
        let n = {
            let mut local = Vec::with_capacity(addrs.len() + 1);
            local.push(io::IoSliceMut::new(buf));
            local.extend(raw.iter_mut().map(|w| io::IoSliceMut::new(w)));
            process_vm_readv(Pid::from_raw(self.pid), &mut local, &remote)
        };
        match n {
            Ok(n) if n == total => {
                for (w, r) in words.iter_mut().zip(raw.iter()) {
                    *w = u32::from_ne_bytes(*r);
                }
                Ok(true)
            }
            // The buffer read, a word not: the words are not given.
            Ok(n) if n >= buf.len() => Ok(false),
            _ => {
                self.read_exact(addr, buf)?;
                Ok(false)
            }
        }
    }

    /// Reads the 4-byte words at `addrs` (4-aligned: none crosses a page)
    /// in one `process_vm_readv`; one by one when that falls short (an
    /// unreadable one fails then).
    pub fn read_words(&self, addrs: &[u64]) -> io::Result<Vec<u32>> {
        let mut words = vec![[0u8; 4]; addrs.len()];
        let remote: Vec<RemoteIoVec> = addrs
            .iter()
            .map(|&a| RemoteIoVec {
                base: a as usize,
                len: 4,
            })
            .collect();
        let mut local: Vec<io::IoSliceMut> =
            words.iter_mut().map(|w| io::IoSliceMut::new(w)).collect();
        let n = process_vm_readv(Pid::from_raw(self.pid), &mut local, &remote);
        drop(local);
        if n.ok() != Some(4 * addrs.len()) {
            for (w, &a) in words.iter_mut().zip(addrs) {
                self.read_exact(a, w)?;
            }
        }
        Ok(words.into_iter().map(u32::from_ne_bytes).collect())
    }

    /// Reads `len` bytes at `addr` into a new vector.
    pub fn read_vec(&self, addr: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut v = vec![0u8; len];
        self.read_exact(addr, &mut v)?;
        Ok(v)
    }

    /// Reads a NUL-terminated string of at most `max` bytes.
    pub fn read_cstr(&self, addr: u64, max: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut chunk = [0u8; 256];
        let mut at = addr;
        while out.len() < max {
            // Never read across a page boundary in one go: the next page may
            // be unmapped while the string ends before it.
            let to_page_end = 4096 - (at as usize % 4096);
            let n = chunk.len().min(to_page_end);
            self.read_exact(at, &mut chunk[..n])?;
            if let Some(end) = chunk[..n].iter().position(|&b| b == 0) {
                out.extend_from_slice(&chunk[..end]);
                return Ok(out);
            }
            out.extend_from_slice(&chunk[..n]);
            at += n as u64;
        }
        out.truncate(max);
        Ok(out)
    }

    /// Writes `data` at `addr`, read-only pages included.
    pub fn write(&self, addr: u64, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let remote = [RemoteIoVec {
            base: addr as usize,
            len: data.len(),
        }];
        match process_vm_writev(Pid::from_raw(self.pid), &[io::IoSlice::new(data)], &remote) {
            Ok(n) if n == data.len() => Ok(()),
            _ => self.proc_mem(true)?.write_all_at(data, addr),
        }
    }

    /// Writes each `(addr, data)` into code pages (read-only to
    /// `process_vm_writev`), through one `/proc/PID/mem` descriptor.
    pub fn write_code(&self, writes: &[(u64, &[u8])]) -> io::Result<()> {
        let mem = self.proc_mem(true)?;
        for &(addr, data) in writes {
            mem.write_all_at(data, addr)?;
        }
        Ok(())
    }

    fn proc_mem(&self, write: bool) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(write)
            .open(format!("/proc/{}/mem", self.pid))
    }
}

impl MemReader for RemoteMem {
    fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<()> {
        self.read_exact(addr, buf)
    }

    fn fd_info(&self, fd: i32) -> Option<String> {
        std::fs::read_to_string(format!("/proc/{}/fdinfo/{fd}", self.pid)).ok()
    }

    fn sysv_ipc(&self, kind: &str) -> Option<String> {
        let theirs = std::fs::read_link(format!("/proc/{}/ns/ipc", self.pid)).ok()?;
        let ours = std::fs::read_link("/proc/self/ns/ipc").ok()?;
        if theirs != ours {
            return None;
        }
        std::fs::read_to_string(format!("/proc/sysvipc/{kind}")).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A buffer and words read in one call, from this process (which
    /// `process_vm_readv` may read as any other); an unreadable word gives
    /// the buffer alone.
    #[test]
    fn reads_a_buffer_and_words_together() {
        let bytes: Vec<u8> = (0..=255).collect();
        let w = [7u32, 0xdead_beef, 42];
        let me = RemoteMem::new(std::process::id() as i32);
        let mut buf = [0u8; 256];
        let addrs: Vec<u64> = w.iter().map(|x| x as *const u32 as u64).collect();
        let mut words = [0u32; 3];
        let read = me
            .read_exact_and_words(bytes.as_ptr() as u64, &mut buf, &addrs, &mut words)
            .expect("read");
        assert!(read);
        assert_eq!(&buf[..], &bytes[..]);
        assert_eq!(words, w);

        // The word at address 8 is never mapped.
        let mut buf = [0u8; 256];
        let mut words = [1u32, 1];
        let read = me
            .read_exact_and_words(bytes.as_ptr() as u64, &mut buf, &[addrs[0], 8], &mut words)
            .expect("read");
        assert!(!read);
        assert_eq!(&buf[..], &bytes[..]);
        assert_eq!(words, [1, 1], "left as they were");

        // No words: the buffer alone.
        let mut buf = [0u8; 16];
        assert!(!me
            .read_exact_and_words(bytes.as_ptr() as u64, &mut buf, &[], &mut [])
            .expect("read"));
        assert_eq!(&buf[..], &bytes[..16]);
    }
}
