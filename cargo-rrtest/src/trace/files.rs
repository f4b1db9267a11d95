//! `files/`: content-addressed copies of the files a recording mapped.
//!
//! A file's [`FileId`] is the lowercase hex of the first 16 bytes of the
//! SHA-256 of its content, and its copy is `files/<id>`. Adding a file:
//!
//! 1. open it and `fstat` it; a file seen before with the same identity
//!    (device, inode, size, mtime) gets its earlier id without being read
//!    again: in this trace it is then already stored; for another trace of
//!    the same process (a test run records many) it is only linked. The
//!    process-wide cache is what keeps per-test recording cheap when every
//!    test maps the same large test binary and libraries;
//! 2. hard-link the *open file* (through `/proc/self/fd`, so the link is the
//!    inode that gets hashed even if the path is replaced meanwhile) to a
//!    temporary name in `files/`, then hash it; if the file changed while it
//!    was hashed, or it cannot be linked (another file system, permissions),
//!    copy it instead, hashing what is copied;
//! 3. rename the temporary name to `files/<id>`, unless that exists already
//!    (the same content from another path): then drop the temporary one.
//!
//! Copies are owner-only (0600, or 0700 if the original was executable).
//! A hard link shares the original's inode: if the original is later
//! rewritten *in place* the trace's copy changes with it. Compilers, linkers
//! and package managers replace files (a new inode) rather than rewrite them.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use sha2::{Digest, Sha256};

use super::codec::{file_id_from_bytes, FILE_ID_LEN};
use super::event::FileId;

/// What identifies a file's content without reading it (while it is not
/// modified in place within the same mtime tick).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Identity {
    fn of(m: &fs::Metadata) -> Self {
        Identity {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
        }
    }
}

/// Ids of the files any trace of this process stored, by identity.
fn known_ids() -> &'static Mutex<HashMap<Identity, FileId>> {
    static KNOWN: OnceLock<Mutex<HashMap<Identity, FileId>>> = OnceLock::new();
    KNOWN.get_or_init(Default::default)
}

fn known_id(ident: &Identity) -> Option<FileId> {
    // A poisoned lock only means another thread panicked mid-insert: the map
    // itself is still a valid cache.
    let map = known_ids().lock().unwrap_or_else(|e| e.into_inner());
    map.get(ident).cloned()
}

fn remember_id(ident: Identity, id: &FileId) {
    let mut map = known_ids().lock().unwrap_or_else(|e| e.into_inner());
    map.insert(ident, id.clone());
}

/// How a file got into `files/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A hard link to the original.
    Linked,
    /// A copy.
    Copied,
    /// Its content was there already.
    Deduplicated,
    /// The same file (identity) was added before; it was not read again.
    Cached,
}

/// The `files/` directory of a trace being written.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    seen: HashMap<Identity, FileId>,
    buf: Vec<u8>,
    tmp_counter: u64,
    /// Counters, for tests and measurements.
    pub linked: u64,
    /// Files copied.
    pub copied: u64,
    /// Bytes read to hash files.
    pub hashed_bytes: u64,
}

/// An I/O error with the path it concerns.
pub type PathError = (PathBuf, io::Error);

fn at<T>(path: &Path, r: io::Result<T>) -> Result<T, PathError> {
    r.map_err(|e| (path.to_owned(), e))
}

impl FileStore {
    /// Creates `dir` (mode 0700).
    pub fn create(dir: PathBuf) -> Result<Self, PathError> {
        at(&dir, super::writer::create_private_dir(&dir))?;
        Ok(FileStore {
            dir,
            seen: HashMap::new(),
            buf: Vec::new(),
            tmp_counter: 0,
            linked: 0,
            copied: 0,
            hashed_bytes: 0,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores `path`'s content; see the module doc. With `link` false the
    /// content is always copied: for files the program may still write (a
    /// hard link would share those writes with the trace).
    pub fn add(&mut self, path: &Path, link: bool) -> Result<(FileId, Stored), PathError> {
        let mut file = at(path, File::open(path))?;
        let before = at(path, file.metadata())?;
        if !before.is_file() {
            return Err((
                path.to_owned(),
                io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
            ));
        }
        let ident = Identity::of(&before);
        if let Some(id) = self.seen.get(&ident) {
            return Ok((id.clone(), Stored::Cached));
        }
        let executable = before.mode() & 0o111 != 0;
        let proc_path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));

        // Another trace of this process stored it: link it without hashing.
        if let Some(id) = known_id(&ident).filter(|_| link) {
            let dest = self.dir.join(&id.0);
            if dest.exists() {
                self.seen.insert(ident, id.clone());
                return Ok((id, Stored::Deduplicated));
            }
            let tmp = self.tmp_path();
            if link_same(&proc_path, &tmp, &ident) {
                if let Err(e) = fs::rename(&tmp, &dest) {
                    let _ = fs::remove_file(&tmp);
                    return Err((dest, e));
                }
                self.linked += 1;
                self.seen.insert(ident, id.clone());
                return Ok((id, Stored::Linked));
            }
            // Fall through: hash (and copy) it as a new file.
        }

        // Try a hard link of the open file, then hash it.
        if self.buf.is_empty() {
            self.buf = vec![0u8; 256 * 1024];
        }
        let tmp = self.tmp_path();
        let linked = link && link_same(&proc_path, &tmp, &ident);
        let mut how = Stored::Copied;
        let mut id = None;
        if linked {
            let digest = hash_reader(&mut file, &mut self.buf, None)
                .and_then(|d| file.metadata().map(|after| (d, after)));
            let (digest, after) = match digest {
                Ok(x) => x,
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    return Err((path.to_owned(), e));
                }
            };
            self.hashed_bytes += digest.1;
            if Identity::of(&after) == ident && digest.1 == ident.size {
                id = Some(digest.0);
                how = Stored::Linked;
            } else {
                // It changed while we read it: the link would not match.
                let _ = fs::remove_file(&tmp);
            }
        }
        let id = match id {
            Some(id) => id,
            None => {
                // Copy, hashing what is copied: the copy always matches its id.
                at(path, file.seek(io::SeekFrom::Start(0)))?;
                let mode = if executable { 0o700 } else { 0o600 };
                let mut out = at(
                    &tmp,
                    OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(mode)
                        .open(&tmp),
                )?;
                let res = hash_reader(&mut file, &mut self.buf, Some(&mut out))
                    .and_then(|d| out.sync_all().map(|()| d));
                match res {
                    Ok((id, n)) => {
                        self.hashed_bytes += n;
                        id
                    }
                    Err(e) => {
                        let _ = fs::remove_file(&tmp);
                        return Err((path.to_owned(), e));
                    }
                }
            }
        };
        let dest = self.dir.join(&id.0);
        if dest.exists() {
            let _ = fs::remove_file(&tmp);
            how = Stored::Deduplicated;
        } else {
            if let Err(e) = fs::rename(&tmp, &dest) {
                let _ = fs::remove_file(&tmp);
                return Err((dest, e));
            }
            match how {
                Stored::Linked => self.linked += 1,
                _ => self.copied += 1,
            }
        }
        // Cache only if the file did not change under us.
        if let Ok(after) = file.metadata() {
            if Identity::of(&after) == ident {
                self.seen.insert(ident, id.clone());
                remember_id(ident, &id);
            }
        }
        Ok((id, how))
    }

    fn tmp_path(&mut self) -> PathBuf {
        self.tmp_counter += 1;
        self.dir
            .join(format!(".tmp-{}-{}", std::process::id(), self.tmp_counter))
    }

    /// Makes the directory's entries durable.
    pub fn sync(&self) -> Result<(), PathError> {
        at(&self.dir, File::open(&self.dir).and_then(|d| d.sync_all()))
    }
}

/// Hard-links the open file behind `proc_path` (a `/proc/self/fd` path) to
/// `tmp`, and checks that the link is the inode of `ident`; on failure
/// nothing is left at `tmp`.
fn link_same(proc_path: &Path, tmp: &Path, ident: &Identity) -> bool {
    let linked = nix::unistd::linkat(
        nix::fcntl::AT_FDCWD,
        proc_path,
        nix::fcntl::AT_FDCWD,
        tmp,
        nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
    )
    .is_ok();
    if !linked {
        return false;
    }
    let same = fs::symlink_metadata(tmp)
        .map(|m| m.dev() == ident.dev && m.ino() == ident.ino)
        .unwrap_or(false);
    if !same {
        let _ = fs::remove_file(tmp);
    }
    same
}

/// Hashes everything `input` yields (copying it to `copy` if given); returns
/// the id and the byte count.
fn hash_reader(
    input: &mut File,
    buf: &mut [u8],
    mut copy: Option<&mut File>,
) -> io::Result<(FileId, u64)> {
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    loop {
        let n = match input.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        if let Some(out) = copy.as_deref_mut() {
            out.write_all(&buf[..n])?;
        }
        total += n as u64;
    }
    Ok((file_id_of_digest(&hasher.finalize()), total))
}

fn file_id_of_digest(digest: &[u8]) -> FileId {
    let mut b = [0u8; FILE_ID_LEN];
    b.copy_from_slice(&digest[..FILE_ID_LEN]);
    file_id_from_bytes(&b)
}

/// The [`FileId`] of some bytes.
pub fn file_id_of(content: &[u8]) -> FileId {
    file_id_of_digest(&Sha256::digest(content))
}
