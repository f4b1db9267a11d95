//! `files/`: content-addressed copies of the files a recording mapped.
//!
//! A file's [`FileId`] is the lowercase hex of the first 16 bytes of the
//! SHA-256 of its content, and its copy is `files/<id>`.
//!
//! Recording is made cheap for the common case, a trace that is deleted
//! because its test passed: the recorder only *notes* each file, as a hard
//! link, and a trace that is kept is then made self-contained by [`keep`].
//!
//! Adding a file while recording ([`FileStore::add`]):
//!
//! 1. open it and `fstat` it. Its *identity* is (device, inode, size, mtime
//!    to the nanosecond). A file whose identity was seen
//!    before gets its earlier id without being read: from this trace (then it
//!    is already stored), from another trace of this process, or from the
//!    persistent [`IdCache`] that every recorder process of this user shares
//!    (a test run records each test in its own process, and every one maps
//!    the same large test binary and libraries);
//! 2. hard-link the *open file* (through `/proc/self/fd`, so the link is the
//!    inode that was identified, even if the path is replaced meanwhile) to a
//!    temporary name in `files/`. A known file that cannot be linked
//!    (another file system; another user's file under
//!    `fs.protected_hardlinks`) is copied, not hashed. An unknown file is
//!    hashed, and if it changed while it was hashed, or it cannot be
//!    linked, it is copied instead, hashing what is copied;
//! 3. rename the temporary name to `files/<id>`, unless that exists already
//!    (the same content from another path): then drop the temporary one.
//!
//! [`FileStore::add_copy`] always copies (a file the program may write);
//! [`FileStore::add_unless_modified`] adds like [`FileStore::add`] a file
//! last modified [`SETTLED`] before the store was created (the recording's
//! start), and copies any other (one the program may have written).
//!
//! Nothing is fsynced while recording: a trace about to be deleted needs no
//! durability, and [`keep`] makes a kept one durable.
//!
//! [`keep`] replaces every hard link by a private copy (0600, or 0700 if the
//! original was executable), hashing the copy and checking it against the
//! entry's id, and fsyncs the copies and `files/` (the fsyncs concurrently).
//! After it, the trace shares no inode with the original files, so
//! rebuilding them (a new inode) or rewriting them in place cannot change
//! it.
//!
//! **The rule: no trace uses bytes other than those it recorded.** Between
//! the recording and [`keep`], `files/<id>` may be the original's inode. If
//! the original was rewritten in place meanwhile (or a cached id was wrong),
//! the bytes no longer hash to `<id>`: `keep` then removes that entry and
//! fails, naming it, so a replay fails with a missing file rather than
//! running on wrong bytes. A cached id is trusted only for the exact
//! identity it was computed for, and goes into the persistent cache only if
//! the file's mtime was already [`SETTLED`] in the past when it was hashed:
//! a write in the same timestamp tick as the hash could otherwise go
//! unnoticed (the "racy git" problem). The ctime would be a stronger key
//! (no user can set it), but hard-linking a file into a trace changes it.

use std::collections::{HashMap, VecDeque};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::codec::{file_id_bytes, file_id_from_bytes, FILE_ID_LEN};
use super::event::FileId;

/// How far in the past a file's mtime must be, when its hash is
/// complete, for its id to be cached across processes: well over the
/// timestamp tick of a file system with nanosecond timestamps (the kernel's
/// coarse clock, at most 10 ms).
pub const SETTLED: Duration = Duration::from_millis(100);

/// [`SETTLED`] for a file whose mtime has no nanoseconds (perhaps a file
/// system with one- or two-second timestamps).
const SETTLED_COARSE: Duration = Duration::from_secs(3);

/// Entries of the persistent cache older than this are removed (a file that
/// old and unchanged is hashed once more).
const PRUNE_AFTER: Duration = Duration::from_secs(30 * 24 * 3600);

/// How often the persistent cache is pruned, at most.
const PRUNE_EVERY: Duration = Duration::from_secs(24 * 3600);

/// The read buffer for hashing and copying.
const BUF_LEN: usize = 256 * 1024;

/// What identifies a file's content without reading it: a rebuild makes a
/// new inode, and a write sets the mtime to the current time. (Not the
/// ctime: hard-linking the file into a trace, and deleting that trace,
/// change it, so every recording would change it.)
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

    /// Its entry's name in the persistent cache.
    fn key(&self) -> String {
        format!(
            "{:x}-{:x}-{:x}-{}.{:09}",
            self.dev, self.ino, self.size, self.mtime, self.mtime_nsec
        )
    }

    /// Whether the mtime was at least [`SETTLED`] before `now`: then a later
    /// write sets a later mtime, so a changed file cannot keep this identity
    /// (unless someone sets its mtime back on purpose, as `rsync --inplace
    /// -t` does: [`keep`] catches that).
    fn settled_at(&self, now: SystemTime) -> bool {
        let Ok(now) = now.duration_since(UNIX_EPOCH) else {
            return false;
        };
        let mtime = i128::from(self.mtime) * 1_000_000_000 + i128::from(self.mtime_nsec);
        let margin = if self.mtime_nsec == 0 {
            SETTLED_COARSE
        } else {
            SETTLED
        };
        now.as_nanos() as i128 - mtime >= margin.as_nanos() as i128
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

/// Temporary names unique within this process.
fn next_tmp_number() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// The persistent id cache, shared by every recorder process of the user:
/// one small file per file identity, named by its key, holding the 32 hex
/// digits of its id.
///
/// Entries are written atomically (a temporary file renamed into place), so
/// concurrent recorders see a whole entry or none; two writing the same
/// entry write the same bytes. They are not fsynced: a lost entry is only
/// hashed again, and anything but exactly 32 lowercase hex digits is
/// ignored. The directory must be ours and private (0700), or the cache is
/// not used. Entries older than 30 days are pruned, at most daily, by the
/// process that writes an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdCache {
    dir: PathBuf,
}

impl IdCache {
    /// The cache in `dir` (created 0700 if missing); None if it cannot be
    /// created, or it or its parent is not this user's, or it is open to
    /// others.
    pub fn open(dir: PathBuf) -> Option<IdCache> {
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent).ok()?;
        }
        match DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(_) => return None,
        }
        let meta = fs::symlink_metadata(&dir).ok()?;
        let uid = fs::metadata("/proc/self").ok()?.uid();
        // Whoever owns the parent could swap the directory.
        let parent_ours = dir
            .parent()
            .is_none_or(|p| fs::metadata(p).is_ok_and(|m| m.uid() == uid));
        (meta.is_dir() && meta.uid() == uid && meta.mode() & 0o077 == 0 && parent_ours)
            .then_some(IdCache { dir })
    }

    /// The user's cache, `<cache dir>/file-ids` in the first usable one of
    /// `$XDG_CACHE_HOME/cargo-rrtest`, `~/.cache/cargo-rrtest` and a per-user
    /// temporary directory; looked up once per process.
    pub fn user() -> Option<IdCache> {
        static USER: OnceLock<Option<IdCache>> = OnceLock::new();
        USER.get_or_init(|| {
            rrtest_sys::dirs::user_cache_dirs()
                .ok()?
                .into_iter()
                .find_map(|d| IdCache::open(d.join("file-ids")))
        })
        .clone()
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn get(&self, ident: &Identity) -> Option<FileId> {
        // Only a regular file: a FIFO put there would block the recorder.
        let mut f = super::open_regular(&self.dir.join(ident.key()), "an id cache entry").ok()?;
        let mut text = [0u8; 2 * FILE_ID_LEN + 1];
        let mut len = 0;
        while len < text.len() {
            match f.read(&mut text[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        let id = FileId(String::from_utf8(text[..len].to_vec()).ok()?);
        file_id_bytes(&id).map(|_| id)
    }

    fn put(&self, ident: &Identity, id: &FileId) {
        let tmp = self
            .dir
            .join(format!(".tmp-{}-{}", std::process::id(), next_tmp_number()));
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(id.0.as_bytes()))
            .and_then(|()| fs::rename(&tmp, self.dir.join(ident.key())));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
            return;
        }
        self.prune_if_due(SystemTime::now());
    }

    /// Removes entries (and temporary files) older than [`PRUNE_AFTER`], if
    /// the last pruning is [`PRUNE_EVERY`] ago.
    fn prune_if_due(&self, now: SystemTime) {
        let marker = self.dir.join(".pruned");
        let age = |m: &fs::Metadata| {
            m.modified()
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .unwrap_or_default()
        };
        if let Ok(m) = fs::metadata(&marker) {
            if age(&m) < PRUNE_EVERY {
                return;
            }
        }
        if File::create(&marker).is_err() {
            return;
        }
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name() == ".pruned" {
                continue;
            }
            if entry.metadata().is_ok_and(|m| age(&m) > PRUNE_AFTER) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
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
    /// Noted by a deferred store: linked or copied by
    /// [`FileStore::materialize`], if ever.
    Deferred,
}

/// The most files a deferred store notes (each keeps a descriptor open)
/// before it must materialize.
const MAX_PENDING: usize = 256;

/// A file a deferred store will store when it materializes: kept open, so
/// what is linked is the inode that was identified.
#[derive(Debug)]
struct Pending {
    file: File,
    ident: Identity,
    id: FileId,
    executable: bool,
}

/// Why a deferred store could not note a file without its directory.
#[derive(Debug)]
pub enum NoteError {
    /// The file must be stored now ([`FileStore::materialize`] first): it
    /// changed while it was hashed, or it may hold the program's writes.
    NeedsDir,
    /// An I/O error.
    Io(PathError),
}

/// The `files/` directory of a trace being written.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    /// When the store was created: the recording's start, for
    /// [`FileStore::add_unless_modified`].
    started: SystemTime,
    seen: HashMap<Identity, FileId>,
    buf: Vec<u8>,
    id_cache: Option<IdCache>,
    /// Counters, for tests and measurements.
    pub linked: u64,
    /// Files copied.
    pub copied: u64,
    /// Bytes read to hash files.
    pub hashed_bytes: u64,
    /// `Some` while the store is deferred: nothing on disk yet, the files
    /// noted so far.
    pending: Option<Vec<Pending>>,
}

/// An I/O error with the path it concerns.
pub type PathError = (PathBuf, io::Error);

fn at<T>(path: &Path, r: io::Result<T>) -> Result<T, PathError> {
    r.map_err(|e| (path.to_owned(), e))
}

impl FileStore {
    /// Creates `dir` (mode 0700). Ids are cached across processes in the
    /// user's [`IdCache`]. The store is created before the recorded
    /// program starts: its creation time is the recording's start.
    #[cfg(test)]
    pub fn create(dir: PathBuf) -> Result<Self, PathError> {
        at(&dir, create_private_dir(&dir))?;
        Ok(FileStore::new(dir, None))
    }

    /// A store that writes nothing until [`FileStore::materialize`]: files
    /// are only noted ([`FileStore::note`]), kept open, with their ids from
    /// the caches or hashed. A recording that will probably be discarded
    /// (a passing test's) then costs no link, copy or directory at all.
    /// Ids are cached across processes in the user's [`IdCache`]. The store
    /// is made before the recorded program starts: its creation time is the
    /// recording's start.
    pub fn deferred(dir: PathBuf) -> Self {
        FileStore::new(dir, Some(Vec::new()))
    }

    fn new(dir: PathBuf, pending: Option<Vec<Pending>>) -> Self {
        FileStore {
            dir,
            started: SystemTime::now(),
            seen: HashMap::new(),
            buf: Vec::new(),
            id_cache: IdCache::user(),
            linked: 0,
            copied: 0,
            hashed_bytes: 0,
            pending,
        }
    }

    /// Notes `path` in a deferred store (like [`FileStore::add`], or like
    /// [`FileStore::add_unless_modified`] with `unless_modified`), returning
    /// its id; [`NoteError::NeedsDir`] when it must be stored now instead.
    pub fn note(&mut self, path: &Path, unless_modified: bool) -> Result<FileId, NoteError> {
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.len() >= MAX_PENDING)
        {
            // Each noted file holds a descriptor open.
            return Err(NoteError::NeedsDir);
        }
        let (mut file, meta) = open_regular(path).map_err(NoteError::Io)?;
        let ident = Identity::of(&meta);
        if unless_modified && !ident.settled_at(self.started) {
            return Err(NoteError::NeedsDir);
        }
        if let Some(id) = self.seen.get(&ident) {
            return Ok(id.clone());
        }
        let known = known_id(&ident).or_else(|| {
            let id = self.id_cache.as_ref()?.get(&ident)?;
            remember_id(ident, &id);
            Some(id)
        });
        let id = match known {
            Some(id) => id,
            None => {
                if self.buf.is_empty() {
                    self.buf = vec![0u8; BUF_LEN];
                }
                let (id, n) = hash_reader(&mut file, &mut self.buf, None)
                    .map_err(|e| NoteError::Io((path.to_owned(), e)))?;
                self.hashed_bytes += n;
                let after = file
                    .metadata()
                    .map_err(|e| NoteError::Io((path.to_owned(), e)))?;
                if Identity::of(&after) != ident || n != ident.size {
                    return Err(NoteError::NeedsDir);
                }
                remember_id(ident, &id);
                if let Some(cache) = &self.id_cache {
                    if ident.settled_at(SystemTime::now()) {
                        cache.put(&ident, &id);
                    }
                }
                id
            }
        };
        self.seen.insert(ident, id.clone());
        let pending = self.pending.as_mut().ok_or(NoteError::NeedsDir)?;
        pending.push(Pending {
            file,
            ident,
            id: id.clone(),
            executable: meta.mode() & 0o111 != 0,
        });
        Ok(id)
    }

    /// Creates the directory of a deferred store and stores every file
    /// noted: a hard link of the open file where possible, else a copy
    /// (checked against its id if the file changed since it was noted).
    /// Nothing to do for a store that is not deferred.
    pub fn materialize(&mut self) -> Result<(), PathError> {
        let Some(pending) = self.pending.take() else {
            return Ok(());
        };
        at(&self.dir, create_private_dir(&self.dir))?;
        for mut p in pending {
            let stored = self.store_known(&mut p.file, &p.ident, &p.id, p.executable)?;
            if stored.is_none() {
                // Neither linked nor copied unchanged: copy what is there
                // now, and refuse it if it is no longer what was recorded.
                let tmp = self.tmp_path();
                let path = self.dir.join(&p.id.0);
                let found = self.copy_in(&mut p.file, &path, &tmp, p.executable)?;
                if found != p.id {
                    let _ = fs::remove_file(&tmp);
                    return Err((
                        path,
                        io::Error::other(format!(
                            "the file changed during the recording (its content id is now {})",
                            found.0
                        )),
                    ));
                }
                if let Err(e) = fs::rename(&tmp, &path) {
                    let _ = fs::remove_file(&tmp);
                    return Err((path, e));
                }
                self.copied += 1;
            }
        }
        Ok(())
    }

    /// Stores `file` (identity `ident`, content id `id` trusted) as
    /// `files/<id>`: nothing if it is there, else a hard link of the open
    /// file, else a copy if the file stays unchanged while copied. None when
    /// neither worked.
    fn store_known(
        &mut self,
        file: &mut File,
        ident: &Identity,
        id: &FileId,
        executable: bool,
    ) -> Result<Option<Stored>, PathError> {
        let dest = self.dir.join(&id.0);
        if dest.exists() {
            return Ok(Some(Stored::Deduplicated));
        }
        let proc_path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        let tmp = self.tmp_path();
        let stored = if link_same(&proc_path, &tmp, ident) {
            self.linked += 1;
            Stored::Linked
        } else if copy_unchanged(file, &tmp, executable, ident) {
            // It cannot be linked (another file system; another user's
            // file under `fs.protected_hardlinks`, e.g. every system
            // library when not recording as root): a copy, trusting the id
            // as a link would (keep checks it), without hashing.
            self.copied += 1;
            Stored::Copied
        } else {
            return Ok(None);
        };
        if let Err(e) = fs::rename(&tmp, &dest) {
            let _ = fs::remove_file(&tmp);
            return Err((dest, e));
        }
        Ok(Some(stored))
    }

    /// Uses `cache` (None: none) as the persistent id cache.
    pub fn set_id_cache(&mut self, cache: Option<IdCache>) {
        self.id_cache = cache;
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores `path`'s content; see the module doc.
    pub fn add(&mut self, path: &Path) -> Result<(FileId, Stored), PathError> {
        let (file, meta) = open_regular(path)?;
        self.add_open(file, &meta, path)
    }

    /// Stores `path` like [`FileStore::add`] if it was last modified before
    /// the recording started (by the [`SETTLED`] margin: the kernel stamps
    /// a write with a clock that may lag ours by a tick), else a private
    /// copy like [`FileStore::add_copy`]: for a file the program mapped as
    /// data from a read-only descriptor. A file unchanged since before the
    /// program started holds no bytes the program wrote before mapping it;
    /// a write after the mapping changes what the link shows, which
    /// [`keep`] detects.
    pub fn add_unless_modified(&mut self, path: &Path) -> Result<(FileId, Stored), PathError> {
        let (file, meta) = open_regular(path)?;
        if Identity::of(&meta).settled_at(self.started) {
            self.add_open(file, &meta, path)
        } else {
            self.copy_open(file, &meta, path)
        }
    }

    /// [`FileStore::add`] of the open `file`, `before` its metadata.
    fn add_open(
        &mut self,
        mut file: File,
        before: &fs::Metadata,
        path: &Path,
    ) -> Result<(FileId, Stored), PathError> {
        let ident = Identity::of(before);
        if let Some(id) = self.seen.get(&ident) {
            return Ok((id.clone(), Stored::Cached));
        }
        let executable = before.mode() & 0o111 != 0;
        let proc_path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));

        // Known to this process or, from an earlier one, to the persistent
        // cache: link it without hashing.
        let known = known_id(&ident).or_else(|| {
            let id = self.id_cache.as_ref()?.get(&ident)?;
            remember_id(ident, &id);
            Some(id)
        });
        if let Some(id) = known {
            if let Some(how) = self.store_known(&mut file, &ident, &id, executable)? {
                self.seen.insert(ident, id.clone());
                return Ok((id, how));
            }
            // Fall through: hash (and copy) it as a new file.
        }

        // Try a hard link of the open file, then hash it.
        if self.buf.is_empty() {
            self.buf = vec![0u8; BUF_LEN];
        }
        let tmp = self.tmp_path();
        let linked = link_same(&proc_path, &tmp, &ident);
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
            None => self.copy_in(&mut file, path, &tmp, executable)?,
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
        // Cache only if the file did not change under us, across processes
        // only if it cannot change in the same timestamp tick either.
        if let Ok(after) = file.metadata() {
            if Identity::of(&after) == ident {
                self.seen.insert(ident, id.clone());
                remember_id(ident, &id);
                if let Some(cache) = &self.id_cache {
                    if ident.settled_at(SystemTime::now()) {
                        cache.put(&ident, &id);
                    }
                }
            }
        }
        Ok((id, how))
    }

    /// Stores a private copy of `path`'s current content, never a link and
    /// whatever the caches say: for a file the program may write to (one it
    /// mapped from a descriptor open for writing), whose later content must
    /// not show through. Hashes what it copies.
    pub fn add_copy(&mut self, path: &Path) -> Result<(FileId, Stored), PathError> {
        let (file, meta) = open_regular(path)?;
        self.copy_open(file, &meta, path)
    }

    /// [`FileStore::add_copy`] of the open `file`, `meta` its metadata.
    fn copy_open(
        &mut self,
        mut file: File,
        meta: &fs::Metadata,
        path: &Path,
    ) -> Result<(FileId, Stored), PathError> {
        let tmp = self.tmp_path();
        let id = self.copy_in(&mut file, path, &tmp, meta.mode() & 0o111 != 0)?;
        let dest = self.dir.join(&id.0);
        let private = fs::metadata(&dest).is_ok_and(|m| m.nlink() == 1);
        if private {
            let _ = fs::remove_file(&tmp);
            return Ok((id, Stored::Deduplicated));
        }
        // Also over a hard link with the same content: that one could change.
        if let Err(e) = fs::rename(&tmp, &dest) {
            let _ = fs::remove_file(&tmp);
            return Err((dest, e));
        }
        self.copied += 1;
        Ok((id, Stored::Copied))
    }

    /// Copies `file` (from its start) to the new file `tmp`, hashing what is
    /// copied, so the copy always matches its id.
    fn copy_in(
        &mut self,
        file: &mut File,
        path: &Path,
        tmp: &Path,
        executable: bool,
    ) -> Result<FileId, PathError> {
        if self.buf.is_empty() {
            self.buf = vec![0u8; BUF_LEN];
        }
        at(path, file.seek(io::SeekFrom::Start(0)))?;
        let mut out = at(tmp, create_copy(tmp, executable))?;
        match hash_reader(file, &mut self.buf, Some(&mut out)) {
            Ok((id, n)) => {
                self.hashed_bytes += n;
                Ok(id)
            }
            Err(e) => {
                let _ = fs::remove_file(tmp);
                Err((path.to_owned(), e))
            }
        }
    }

    fn tmp_path(&mut self) -> PathBuf {
        self.dir
            .join(format!(".tmp-{}-{}", std::process::id(), next_tmp_number()))
    }
}

/// Opens `path` and checks that it is a regular file.
fn open_regular(path: &Path) -> Result<(File, fs::Metadata), PathError> {
    let file = at(path, File::open(path))?;
    let meta = at(path, file.metadata())?;
    if !meta.is_file() {
        return Err((
            path.to_owned(),
            io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    Ok((file, meta))
}

/// Creates a private file for a copy: 0700 if the original is executable,
/// else 0600.
fn create_copy(path: &Path, executable: bool) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if executable { 0o700 } else { 0o600 })
        .open(path)
}

/// What [`keep`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Kept {
    /// Hard links replaced by private copies.
    pub copied: u64,
    /// Entries that were private already (checked and synced in place).
    pub checked: u64,
    /// Bytes hashed.
    pub bytes: u64,
}

/// Why [`keep`] failed.
#[derive(Debug)]
pub enum KeepError {
    /// An I/O error.
    Io(PathError),
    /// `path` (an entry of `files/`, now removed) did not hold the content
    /// its name says.
    Mismatch {
        /// The entry.
        path: PathBuf,
        /// The id of what it held.
        found: FileId,
    },
}

impl From<PathError> for KeepError {
    fn from(e: PathError) -> Self {
        KeepError::Io(e)
    }
}

/// A path that [`keep`] fsyncs too, concurrently with its entries: the
/// rest of a trace (its stream, its header, its directory and the one
/// above).
#[derive(Debug, Clone, Copy)]
pub struct AlsoSync<'a> {
    /// The file or directory.
    pub path: &'a Path,
    /// A missing `path` is no error (an optional file).
    pub may_be_missing: bool,
}

/// The most fsyncs [`keep`] has under way at once (each on a thread).
const MAX_SYNCING: usize = 32;

/// An fsync under way.
enum Syncing<'s> {
    /// On a thread of its own.
    Thread(ScopedJoinHandle<'s, io::Result<()>>),
    /// Done already: no thread could be started for it.
    Done(io::Result<()>),
}

impl<'s> Syncing<'s> {
    /// Starts fsyncing `file` on a new thread of `s`, or, with none to
    /// spare, fsyncs it now.
    fn start(s: &'s Scope<'s, '_>, file: &File) -> Self {
        let spawned = file
            .try_clone()
            .and_then(|f| std::thread::Builder::new().spawn_scoped(s, move || f.sync_all()));
        match spawned {
            Ok(thread) => Syncing::Thread(thread),
            Err(_) => Syncing::Done(file.sync_all()),
        }
    }

    /// Waits for it to end.
    fn wait(self) -> io::Result<()> {
        match self {
            Syncing::Thread(thread) => thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Syncing::Done(result) => result,
        }
    }
}

/// A file that [`keep`] makes durable.
struct Flushing<'s> {
    path: PathBuf,
    syncing: Syncing<'s>,
    /// Where to rename it once it is durable (a checked copy's entry).
    rename_to: Option<PathBuf>,
}

impl Flushing<'_> {
    /// Waits for the fsync, then renames. A copy that cannot be made
    /// durable or renamed is removed.
    fn finish(self) -> Result<(), KeepError> {
        let synced = self.syncing.wait();
        let Some(to) = self.rename_to else {
            return Ok(at(&self.path, synced)?);
        };
        let renamed = synced.and_then(|()| fs::rename(&self.path, &to));
        if renamed.is_err() {
            let _ = fs::remove_file(&self.path);
        }
        Ok(at(&to, renamed)?)
    }
}

/// Makes the `files/` directory `dir` of a trace self-contained and durable:
/// every entry shared with another name (a hard link to the original) is
/// replaced by a private copy, every entry (every copy) is hashed and
/// checked against its name, and the entries and the directory are
/// fsynced, as is every path in `also`. Leftover temporary files are
/// removed. An entry whose bytes do not match its name is removed (nothing
/// may replay on wrong bytes) and reported; every entry is checked even
/// when one fails, and the first failure met is returned. A missing `dir`
/// (a recording that stopped early) has no entries.
///
/// Only the fsyncs wait on the disk, so they are not waited for one by
/// one: this thread copies and hashes the entries, smallest first, while
/// each fsync runs on a thread of its own (up to [`MAX_SYNCING`] at once;
/// a copy's starts before the copy is hashed), and the file system serves
/// them together (ext4 commits concurrent fsyncs in one journal
/// transaction). A copy is renamed over its entry once it is checked and
/// durable, and `dir` is fsynced last, after every rename into it.
pub fn keep(dir: &Path, also: &[AlsoSync<'_>]) -> Result<Kept, KeepError> {
    let mut entries = Vec::new();
    let dir_exists = match fs::read_dir(dir) {
        Ok(listing) => {
            for entry in listing {
                let entry = at(dir, entry)?;
                let path = entry.path();
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') {
                    // A temporary file of a recorder or keep that was
                    // interrupted.
                    at(&path, fs::remove_file(&path))?;
                    continue;
                }
                let id = FileId(name.into_owned());
                if file_id_bytes(&id).is_none() {
                    // Not a content-addressed entry: not ours to check.
                    continue;
                }
                let size = at(&path, entry.metadata())?.len();
                entries.push((size, path, id));
            }
            true
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(KeepError::Io((dir.to_owned(), e))),
    };
    // The largest last: its fsync, which takes longest, then overlaps its
    // hashing, and the others' are done by then.
    entries.sort_by_key(|e| e.0);

    let mut kept = Kept::default();
    // What each entry and fsync came to, in the order they ended.
    let mut outcomes = Vec::new();
    let mut buf = vec![0u8; BUF_LEN];
    std::thread::scope(|s| {
        let mut flushing = VecDeque::new();
        for a in also {
            match File::open(a.path) {
                Ok(f) => flushing.push_back(Flushing {
                    path: a.path.to_owned(),
                    syncing: Syncing::start(s, &f),
                    rename_to: None,
                }),
                Err(e) if a.may_be_missing && e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => outcomes.push(Err(KeepError::Io((a.path.to_owned(), e)))),
            }
        }
        for (_, path, id) in &entries {
            if flushing.len() >= MAX_SYNCING {
                outcomes.extend(flushing.pop_front().map(Flushing::finish));
            }
            match check_entry(s, path, id, &mut buf) {
                Ok((done, f)) => {
                    kept.copied += done.copied;
                    kept.checked += done.checked;
                    kept.bytes += done.bytes;
                    flushing.push_back(f);
                }
                Err(e) => outcomes.push(Err(e)),
            }
        }
        outcomes.extend(flushing.into_iter().map(Flushing::finish));
    });
    outcomes.into_iter().collect::<Result<(), KeepError>>()?;
    if dir_exists {
        at(dir, File::open(dir).and_then(|d| d.sync_all()))?;
    }
    Ok(kept)
}

/// Checks the entry `path` of `files/` against `expected`: a shared one (a
/// hard link) is first copied to a new private file, and the copy is
/// checked. Its fsync is started (on a thread of `s`) before it is hashed.
/// Returns what was done and the fsync under way, with the rename of the
/// copy over `path` that must follow it. An entry that does not hold
/// `expected` is removed, with its copy.
fn check_entry<'s>(
    s: &'s Scope<'s, '_>,
    path: &Path,
    expected: &FileId,
    buf: &mut [u8],
) -> Result<(Kept, Flushing<'s>), KeepError> {
    let mut file = at(path, File::open(path))?;
    let meta = at(path, file.metadata())?;
    let (flushing, hashed) = if meta.nlink() > 1 {
        let tmp = path.with_file_name(format!(
            ".keep-{}-{}",
            std::process::id(),
            next_tmp_number()
        ));
        let copied = create_copy(&tmp, meta.mode() & 0o111 != 0).and_then(|mut out| {
            // Holes stay holes.
            hash_reader(&mut file, buf, Some(&mut out))?;
            Ok(out)
        });
        let copy = match copied {
            Ok(copy) => copy,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(KeepError::Io((path.to_owned(), e)));
            }
        };
        let syncing = Syncing::start(s, &copy);
        // What is checked is what is kept: the copy's bytes.
        let hashed = File::open(&tmp).and_then(|mut c| hash_reader(&mut c, buf, None));
        let flushing = Flushing {
            path: tmp,
            syncing,
            rename_to: Some(path.to_owned()),
        };
        (flushing, hashed)
    } else {
        let syncing = Syncing::start(s, &file);
        let hashed = hash_reader(&mut file, buf, None);
        let flushing = Flushing {
            path: path.to_owned(),
            syncing,
            rename_to: None,
        };
        (flushing, hashed)
    };
    let copied = u64::from(flushing.rename_to.is_some());
    match hashed {
        Ok((found, bytes)) if found == *expected => {
            let done = Kept {
                copied,
                checked: 1 - copied,
                bytes,
            };
            Ok((done, flushing))
        }
        other => {
            if flushing.rename_to.is_some() {
                let _ = fs::remove_file(&flushing.path);
            }
            let (found, _) = at(path, other)?;
            // Not the recorded bytes: nothing may replay on them.
            at(path, fs::remove_file(path))?;
            Err(KeepError::Mismatch {
                path: path.to_owned(),
                found,
            })
        }
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

/// Copies `file` (from its start, in the kernel where it can) to the new
/// file `tmp`, and checks that it still has the identity `ident` and that
/// all of it was copied; on failure nothing is left at `tmp`.
fn copy_unchanged(file: &mut File, tmp: &Path, executable: bool, ident: &Identity) -> bool {
    let copied = file.seek(io::SeekFrom::Start(0)).and_then(|_| {
        let mut out = create_copy(tmp, executable)?;
        io::copy(file, &mut out)
    });
    let same = matches!(copied, Ok(n) if n == ident.size)
        && file.metadata().is_ok_and(|m| Identity::of(&m) == *ident);
    if !same {
        let _ = fs::remove_file(tmp);
    }
    same
}

/// Hashes everything `input` yields (copying it to `copy` if given); returns
/// the id and the byte count.
///
/// Holes stay holes: the holes `input` reports (`SEEK_DATA`/`SEEK_HOLE`) are
/// hashed as the zeros they read as without being read, and neither they nor
/// any other all-zero 4 KiB block of data are written to `copy` (which gets
/// its length at the end), so a sparse file's copy takes the disk its data
/// takes. A termination request to this process
/// ([`rrtest_sys::signals::pending_request`]) stops it with an error.
fn hash_reader(
    input: &mut File,
    buf: &mut [u8],
    mut copy: Option<&mut File>,
) -> io::Result<(FileId, u64)> {
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let start = input.stream_position()?;
    // The end of the data run being read: past it, ask where data resumes.
    let mut data_end = start;
    loop {
        if let Some(sig) = rrtest_sys::signals::pending_request() {
            return Err(io::Error::other(format!(
                "stopped by a termination request (signal {sig})"
            )));
        }
        let pos = start + total;
        if pos >= data_end {
            match next_data(input, pos)? {
                Some((data, hole)) => {
                    if data > pos {
                        hash_zeros(&mut hasher, buf, data - pos);
                        total = data - start;
                    }
                    // (Asking moved the file's position.)
                    input.seek(io::SeekFrom::Start(data))?;
                    data_end = hole;
                }
                None => {
                    // A hole up to the end of the file (or no data at all);
                    // the position does not matter any more.
                    let len = input.metadata()?.len();
                    if len > pos {
                        hash_zeros(&mut hasher, buf, len - pos);
                        total = len - start;
                    }
                    break;
                }
            }
        }
        let left = data_end - (start + total);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match input.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        if let Some(out) = copy.as_deref_mut() {
            write_sparse(out, total, &buf[..n])?;
        }
        total += n as u64;
    }
    if let Some(out) = copy {
        // Trailing holes (and zero blocks) were not written.
        out.set_len(total)?;
    }
    Ok((file_id_of_digest(&hasher.finalize()), total))
}

/// Where the data at or after `pos` starts and ends (the next hole), or
/// None when there is none. A file system without `SEEK_DATA` reports all
/// of the file as data. Moves the file's position.
fn next_data(file: &File, pos: u64) -> io::Result<Option<(u64, u64)>> {
    use nix::unistd::{lseek, Whence};
    let Ok(at) = i64::try_from(pos) else {
        return Ok(None);
    };
    let data = match lseek(file, at, Whence::SeekData) {
        Ok(d) => d as u64,
        Err(nix::errno::Errno::ENXIO) => return Ok(None),
        Err(nix::errno::Errno::EINVAL) => return Ok(Some((pos, u64::MAX))),
        Err(e) => return Err(e.into()),
    };
    let hole = match lseek(file, data as i64, Whence::SeekHole) {
        Ok(h) => h as u64,
        Err(_) => u64::MAX,
    };
    Ok(Some((data, hole.max(data + 1))))
}

/// Feeds `len` zero bytes to `hasher`.
fn hash_zeros(hasher: &mut Sha256, buf: &mut [u8], mut len: u64) {
    buf.fill(0);
    while len > 0 {
        let n = buf.len().min(usize::try_from(len).unwrap_or(usize::MAX));
        hasher.update(&buf[..n]);
        len -= n as u64;
    }
}

/// Writes `data` at offset `at` of `out`, leaving all-zero 4 KiB blocks
/// (aligned to the file) unwritten, so they stay holes.
fn write_sparse(out: &mut File, at: u64, data: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    const BLOCK: u64 = 4096;
    let mut i = 0usize;
    while i < data.len() {
        let off = at + i as u64;
        let block_end = ((off / BLOCK + 1) * BLOCK - at) as usize;
        let end = block_end.min(data.len());
        let chunk = &data[i..end];
        if chunk.iter().any(|&b| b != 0) {
            out.write_all_at(chunk, off)?;
        }
        i = end;
    }
    Ok(())
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

/// Creates `dir` with mode 0700; an existing empty directory is accepted.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if !dir.is_dir() {
                return Err(e);
            }
            if fs::read_dir(dir)?.next().is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "the directory exists and is not empty",
                ));
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of `size` bytes, holes but for `data` at each offset.
    fn sparse_file(path: &Path, size: u64, data: &[(u64, &[u8])]) {
        use std::os::unix::fs::FileExt;
        let f = File::create(path).expect("create");
        f.set_len(size).expect("set_len");
        for (at, bytes) in data {
            f.write_all_at(bytes, *at).expect("write");
        }
    }

    #[test]
    fn a_sparse_file_is_copied_sparsely_with_the_id_of_its_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("sparse");
        let size = 32u64 << 20;
        sparse_file(
            &src,
            size,
            &[(0, b"head"), (20 << 20, b"middle"), (size - 3, b"end")],
        );
        let mut content = vec![0u8; size as usize];
        content[..4].copy_from_slice(b"head");
        content[20 << 20..(20 << 20) + 6].copy_from_slice(b"middle");
        content[size as usize - 3..].copy_from_slice(b"end");

        let mut store = FileStore::create(dir.path().join("files")).expect("store");
        let (id, _) = store.add_copy(&src).expect("add_copy");
        assert_eq!(id, file_id_of(&content));
        let copy = dir.path().join("files").join(&id.0);
        let meta = fs::metadata(&copy).expect("copy");
        assert_eq!(meta.len(), size);
        assert!(
            meta.blocks() * 512 < 1 << 20,
            "the copy takes {} bytes of disk",
            meta.blocks() * 512
        );
        assert_eq!(fs::read(&copy).expect("read"), content);
    }

    #[test]
    fn a_linked_sparse_file_is_kept_sparsely() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("sparse");
        let size = 8u64 << 20;
        sparse_file(&src, size, &[(4096 * 3, b"data")]);
        let mut store = FileStore::create(dir.path().join("files")).expect("store");
        let (id, how) = store.add(&src).expect("add");
        assert_eq!(how, Stored::Linked);
        keep(&dir.path().join("files"), &[]).expect("keep");
        let kept = dir.path().join("files").join(&id.0);
        let meta = fs::metadata(&kept).expect("kept");
        assert_eq!(meta.nlink(), 1, "keep made a private copy");
        assert_eq!(meta.len(), size);
        assert!(
            meta.blocks() * 512 < 1 << 20,
            "{} bytes of disk",
            meta.blocks() * 512
        );
        let mut content = vec![0u8; size as usize];
        content[4096 * 3..4096 * 3 + 4].copy_from_slice(b"data");
        assert_eq!(id, file_id_of(&content));
    }

    #[test]
    fn a_dense_file_and_an_empty_one_hash_as_before() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dense = dir.path().join("dense");
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&dense, &content).expect("write");
        let empty = dir.path().join("empty");
        fs::write(&empty, b"").expect("write");
        let mut store = FileStore::create(dir.path().join("files")).expect("store");
        assert_eq!(store.add_copy(&dense).expect("add").0, file_id_of(&content));
        assert_eq!(store.add_copy(&empty).expect("add").0, file_id_of(b""));
    }

    fn identity_of(path: &Path) -> Identity {
        Identity::of(&fs::metadata(path).expect("stat"))
    }

    fn store(dir: &Path, cache: &IdCache) -> FileStore {
        fs::create_dir(dir).expect("trace dir");
        let mut s = FileStore::create(dir.join("files")).expect("files/");
        s.set_id_cache(Some(cache.clone()));
        s
    }

    /// A FIFO in place of a cache entry is a miss, not a recorder blocked
    /// on it forever.
    #[test]
    fn a_fifo_cache_entry_is_a_miss_without_blocking() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = IdCache::open(tmp.path().join("ids")).expect("cache");
        let src = tmp.path().join("lib.so");
        fs::write(&src, b"library bytes").expect("write");
        let ident = identity_of(&src);
        nix::unistd::mkfifo(
            &cache.dir().join(ident.key()),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .expect("mkfifo");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(cache.get(&ident));
        });
        let got = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("reading the cache blocked on a FIFO");
        assert_eq!(got, None);
    }

    #[test]
    fn a_settled_file_is_cached_for_other_processes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = IdCache::open(tmp.path().join("ids")).expect("cache");
        let src = tmp.path().join("lib.so");
        fs::write(&src, b"library bytes").expect("write");
        // Just written: its mtime is not settled, so it is not cached yet.
        let (id, _) = store(&tmp.path().join("t1"), &cache)
            .add(&src)
            .expect("add");
        assert_eq!(cache.get(&identity_of(&src)), None);
        // Another file, settled: hashed once, then cached on disk.
        let old = tmp.path().join("old.so");
        fs::write(&old, b"older library").expect("write");
        std::thread::sleep(SETTLED + Duration::from_millis(50));
        let (id_old, _) = store(&tmp.path().join("t2"), &cache)
            .add(&old)
            .expect("add");
        assert_eq!(id_old, file_id_of(b"older library"));
        assert_eq!(cache.get(&identity_of(&old)), Some(id_old));
        assert_ne!(id, file_id_of(b"older library"));
    }

    #[test]
    fn a_cached_id_is_used_without_hashing_and_checked_when_kept() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = IdCache::open(tmp.path().join("ids")).expect("cache");
        let src = tmp.path().join("test-binary");
        fs::write(&src, vec![7u8; 100_000]).expect("write");
        // What another recorder process left in the cache, here deliberately
        // wrong to prove that it is used, and that keeping catches it.
        let wrong = file_id_of(b"other bytes");
        cache.put(&identity_of(&src), &wrong);
        let trace = tmp.path().join("t");
        let mut files = store(&trace, &cache);
        let (id, how) = files.add(&src).expect("add");
        assert_eq!((id.clone(), how), (wrong.clone(), Stored::Linked));
        assert_eq!(files.hashed_bytes, 0);
        match keep(files.dir(), &[]) {
            Err(KeepError::Mismatch { path, found }) => {
                assert_eq!(path, files.dir().join(&wrong.0));
                assert_eq!(found, file_id_of(&[7u8; 100_000]));
            }
            other => panic!("expected a mismatch, got {other:?}"),
        }
        assert!(!files.dir().join(&wrong.0).exists(), "wrong bytes left");
        assert!(src.exists(), "the original was touched");
    }

    #[test]
    fn data_unmodified_since_before_the_start_is_linked_else_copied() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = IdCache::open(tmp.path().join("ids")).expect("cache");
        let write_at = |name: &str, when: Option<SystemTime>| {
            let path = tmp.path().join(name);
            fs::write(&path, name.as_bytes()).expect("write");
            if let Some(t) = when {
                File::options()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(t))
                    .expect("set mtime");
            }
            path
        };
        let old = write_at(
            "old.so",
            Some(SystemTime::now() - Duration::from_secs(3600)),
        );
        let mut files = store(&tmp.path().join("t"), &cache);
        let started = files.started;
        // Within the margin before the start: a write just after it could
        // carry such an mtime (the kernel's clock lags by up to a tick).
        let recent = write_at("recent.dat", Some(started - SETTLED / 2));
        let new = write_at("new.dat", None);
        let future = write_at("future.dat", Some(started + Duration::from_secs(3600)));

        let links = |files: &FileStore, id: &FileId| {
            fs::metadata(files.dir().join(&id.0))
                .expect("entry")
                .nlink()
        };
        let (id, how) = files.add_unless_modified(&old).expect("old");
        assert_eq!((how, links(&files, &id)), (Stored::Linked, 2));
        for path in [&recent, &new, &future] {
            let (id, how) = files.add_unless_modified(path).expect("add");
            assert_eq!(id, file_id_of(&fs::read(path).expect("read")));
            assert_eq!(
                (how, links(&files, &id)),
                (Stored::Copied, 1),
                "{}",
                path.display()
            );
        }
    }

    #[test]
    fn a_known_file_that_cannot_be_linked_is_copied_without_hashing() {
        // A file on another file system cannot be hard-linked (as a system
        // library cannot be by a user other than its owner).
        let tmp = tempfile::tempdir().expect("tempdir");
        let Some(other_fs) = ["/dev/shm", "/run/user"].iter().map(Path::new).find(|d| {
            fs::metadata(d).is_ok_and(|m| m.is_dir())
                && fs::metadata(d).map(|m| m.dev()).ok()
                    != fs::metadata(tmp.path()).map(|m| m.dev()).ok()
        }) else {
            eprintln!("skipped: no directory on another file system than {tmp:?}");
            return;
        };
        let Ok(elsewhere) = tempfile::tempdir_in(other_fs) else {
            eprintln!("skipped: cannot write in {}", other_fs.display());
            return;
        };
        let cache = IdCache::open(tmp.path().join("ids")).expect("cache");
        let src = elsewhere.path().join("lib.so");
        let content = vec![5u8; 300_000];
        fs::write(&src, &content).expect("write");

        // Unknown: hashed while copied.
        let mut first = store(&tmp.path().join("t1"), &cache);
        let (id, how) = first.add(&src).expect("add");
        assert_eq!((id.clone(), how), (file_id_of(&content), Stored::Copied));
        assert_eq!(first.hashed_bytes, content.len() as u64);

        // Known (to this process): copied, not hashed again.
        let mut second = store(&tmp.path().join("t2"), &cache);
        let (id2, how) = second.add(&src).expect("add again");
        assert_eq!((id2.clone(), how), (id, Stored::Copied));
        assert_eq!(second.hashed_bytes, 0);
        let copy = second.dir().join(&id2.0);
        assert_eq!(fs::read(&copy).expect("read"), content);
        assert_eq!(fs::metadata(&copy).expect("stat").nlink(), 1);
        assert_eq!(keep(second.dir(), &[]).expect("keep").checked, 1);
    }

    #[test]
    fn damaged_cache_entries_are_ignored() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = IdCache::open(tmp.path().join("ids")).expect("cache");
        let src = tmp.path().join("f");
        fs::write(&src, b"content").expect("write");
        let ident = identity_of(&src);
        for bad in [
            &b""[..],
            b"0123",
            b"0123456789ABCDEF0123456789abcdef",
            &[b'a'; 33],
        ] {
            fs::write(cache.dir().join(ident.key()), bad).expect("write");
            assert_eq!(cache.get(&ident), None, "{bad:?}");
        }
        let trace = tmp.path().join("t");
        let (id, _) = store(&trace, &cache).add(&src).expect("add");
        assert_eq!(id, file_id_of(b"content"));
    }

    #[test]
    fn a_cache_directory_open_to_others_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("ids");
        fs::create_dir(&dir).expect("mkdir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).expect("chmod");
        assert_eq!(IdCache::open(dir.clone()), None);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod");
        assert!(IdCache::open(dir).is_some());
    }

    #[test]
    fn settled_means_an_mtime_older_than_the_tick_margin() {
        let now = SystemTime::now();
        let at = |ago: Duration, nsec: bool| {
            let t = (now - ago).duration_since(UNIX_EPOCH).expect("after 1970");
            Identity {
                dev: 1,
                ino: 2,
                size: 3,
                mtime: t.as_secs() as i64,
                mtime_nsec: if nsec {
                    i64::from(t.subsec_nanos()) | 1
                } else {
                    0
                },
            }
        };
        assert!(!at(Duration::ZERO, true).settled_at(now));
        assert!(!at(Duration::from_millis(50), true).settled_at(now));
        assert!(at(Duration::from_millis(200), true).settled_at(now));
        // Whole seconds only: perhaps a file system with coarse timestamps.
        assert!(!at(Duration::from_secs(2), false).settled_at(now));
        assert!(at(Duration::from_secs(10), false).settled_at(now));
    }

    #[test]
    fn old_entries_are_pruned_at_most_daily() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = IdCache::open(tmp.path().join("ids")).expect("cache");
        let entry = cache.dir().join("1-2-3-4.000000000");
        fs::write(&entry, file_id_of(b"x").0).expect("write");
        let now = SystemTime::now();
        // Pruned "now": the entry is fresh and stays.
        cache.prune_if_due(now);
        assert!(entry.exists());
        // 31 days later, but the last pruning was "just now": not yet.
        let later = now + PRUNE_AFTER + Duration::from_secs(24 * 3600);
        let marker = cache.dir().join(".pruned");
        File::options()
            .write(true)
            .open(&marker)
            .and_then(|f| f.set_modified(later))
            .expect("marker");
        cache.prune_if_due(later);
        assert!(entry.exists());
        // A day after that pruning: the old entry goes.
        cache.prune_if_due(later + PRUNE_EVERY + Duration::from_secs(1));
        assert!(!entry.exists());
    }
}
