//! gdb's file access on the target (`vFile:` packets), read-only: gdb
//! reads the program's `/proc` files through it (`info proc mappings`
//! reads `/proc/PID/maps`), and the executable and libraries by path.
//!
//! A file the recording mapped (the program, its loader, its libraries) is
//! served from the trace's copy, by the path it had while recording
//! (`target.rs` asks the engine): gdb reads the libraries that ran, also
//! when the trace was recorded on another machine. gdb names the replayed
//! process by its recorded pid and threads by their recorded ids;
//! [`translate`] rewrites `/proc/PID/...` and `/proc/PID/task/TID/...` to
//! the replay's real ids. Other paths are opened as they are, read-only, as
//! gdb would open them itself: the server runs on the machine gdb runs on.
//! Files are never created, written or removed.
//!
//! This file must not read the tracee's memory or registers.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;

use gdbstub::target::ext::host_io::{HostIoErrno, HostIoOpenMode, HostIoStat};

/// The open files of one session, by the descriptor gdb was given.
#[derive(Debug, Default)]
pub struct Files {
    open: HashMap<u32, File>,
    next: u32,
}

/// How `/proc` ids map: the recorded pid to the real one, and a recorded
/// thread id to the real one if it is a live thread.
pub trait Ids {
    /// The recorded pid of the debugged process.
    fn recorded_pid(&self) -> i32;
    /// Its real pid.
    fn real_pid(&self) -> i32;
    /// The real id of a recorded thread.
    fn real_tid(&self, tid: i32) -> Option<i32>;
}

/// The path to open for `path` as gdb names it.
pub fn translate(path: &str, ids: &dyn Ids) -> PathBuf {
    let Some(rest) = path.strip_prefix("/proc/") else {
        return PathBuf::from(path);
    };
    let (pid, after) = rest.split_once('/').unwrap_or((rest, ""));
    if pid.parse::<i32>().ok() != Some(ids.recorded_pid()) {
        return PathBuf::from(path);
    }
    let real = ids.real_pid();
    if let Some(task) = after.strip_prefix("task/") {
        let (tid, tail) = task.split_once('/').unwrap_or((task, ""));
        if let Some(real_tid) = tid.parse::<i32>().ok().and_then(|t| ids.real_tid(t)) {
            return PathBuf::from(format!("/proc/{real}/task/{real_tid}/{tail}"));
        }
    }
    PathBuf::from(format!("/proc/{real}/{after}"))
}

fn errno_of(e: &std::io::Error) -> HostIoErrno {
    use std::io::ErrorKind::*;
    match e.kind() {
        NotFound => HostIoErrno::ENOENT,
        PermissionDenied => HostIoErrno::EACCES,
        IsADirectory => HostIoErrno::EISDIR,
        NotADirectory => HostIoErrno::ENOTDIR,
        _ => HostIoErrno::EIO,
    }
}

impl Files {
    /// Opens `path` read-only (`write` requests are refused with EROFS).
    pub fn open(&mut self, path: PathBuf, write: bool) -> Result<u32, HostIoErrno> {
        if write {
            return Err(HostIoErrno::EROFS);
        }
        let file = File::open(&path).map_err(|e| errno_of(&e))?;
        if file.metadata().is_ok_and(|m| m.is_dir()) {
            return Err(HostIoErrno::EISDIR);
        }
        let fd = self.next;
        self.next += 1;
        self.open.insert(fd, file);
        Ok(fd)
    }

    /// Closes a descriptor.
    pub fn close(&mut self, fd: u32) -> Result<(), HostIoErrno> {
        self.open.remove(&fd).map(drop).ok_or(HostIoErrno::EBADF)
    }

    /// Reads up to `buf.len()` bytes at `offset`.
    pub fn pread(&mut self, fd: u32, offset: u64, buf: &mut [u8]) -> Result<usize, HostIoErrno> {
        let file = self.open.get(&fd).ok_or(HostIoErrno::EBADF)?;
        loop {
            match file.read_at(buf, offset) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(errno_of(&e)),
            }
        }
    }

    /// The file's status, in the protocol's fixed-width fields.
    pub fn fstat(&mut self, fd: u32) -> Result<HostIoStat, HostIoErrno> {
        let file = self.open.get(&fd).ok_or(HostIoErrno::EBADF)?;
        let m = file.metadata().map_err(|e| errno_of(&e))?;
        let narrow = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        Ok(HostIoStat {
            st_dev: narrow(m.dev()),
            st_ino: narrow(m.ino()),
            st_mode: HostIoOpenMode::from_bits_truncate(m.mode()),
            st_nlink: narrow(m.nlink()),
            st_uid: m.uid(),
            st_gid: m.gid(),
            st_rdev: narrow(m.rdev()),
            st_size: m.size(),
            st_blksize: m.blksize(),
            st_blocks: m.blocks(),
            st_atime: narrow(m.atime().max(0) as u64),
            st_mtime: narrow(m.mtime().max(0) as u64),
            st_ctime: narrow(m.ctime().max(0) as u64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl Ids for Fixed {
        fn recorded_pid(&self) -> i32 {
            100
        }
        fn real_pid(&self) -> i32 {
            5000
        }
        fn real_tid(&self, tid: i32) -> Option<i32> {
            (tid == 101).then_some(5001)
        }
    }

    #[test]
    fn proc_paths_of_the_recorded_ids_name_the_replay() {
        let t = |p: &str| translate(p, &Fixed).display().to_string();
        assert_eq!(t("/proc/100/maps"), "/proc/5000/maps");
        assert_eq!(t("/proc/100/task/101/maps"), "/proc/5000/task/5001/maps");
        // An unknown thread: the process's file.
        assert_eq!(t("/proc/100/task/999/maps"), "/proc/5000/task/999/maps");
        assert_eq!(t("/proc/101/maps"), "/proc/101/maps");
        assert_eq!(t("/proc/self/maps"), "/proc/self/maps");
        assert_eq!(t("/lib/libc.so.6"), "/lib/libc.so.6");
    }

    #[test]
    fn files_are_read_only_and_read_at_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        let mut files = Files::default();
        assert!(matches!(
            files.open(path.clone(), true),
            Err(HostIoErrno::EROFS)
        ));
        assert!(matches!(
            files.open(dir.path().to_path_buf(), false),
            Err(HostIoErrno::EISDIR)
        ));
        let fd = files.open(path, false).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(files.pread(fd, 8, &mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"89");
        assert_eq!(files.fstat(fd).unwrap().st_size, 10);
        files.close(fd).unwrap();
        assert!(matches!(files.close(fd), Err(HostIoErrno::EBADF)));
    }
}
