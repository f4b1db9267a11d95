//! The ELF interpreter (dynamic loader) a program names in its `PT_INTERP`
//! program header: the one code file the kernel, not the program, maps at
//! `execve`, so no `mmap` of the recording shows it.
//!
//! The recorder keeps the loader's content in the trace next to the
//! executable's ([`keep_loader`], header `loaders`); replay runs a copy of
//! the executable whose `PT_INTERP` names the trace's loader instead of the
//! replay host's (`replayer/exe.rs`). This module only reads and edits ELF
//! program headers; it starts nothing and touches no tracee.

use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rrtest_trace::{FileId, InterpreterCopy, LoaderCopy, TraceWriter};

const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_PHDR: u32 = 6;
/// Larger program header tables than this are not from a real executable.
const MAX_PHDRS: usize = 4096;

/// Where a program's `PT_INTERP` string lies, in the file and in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interp {
    /// The loader's path, without its terminating NUL.
    pub path: Vec<u8>,
    /// File offset of the string.
    pub offset: u64,
    /// Link-time address of the string (add the load bias for a PIE).
    pub vaddr: u64,
    /// Link-time address of the program header table (`AT_PHDR` minus this
    /// is the load bias).
    pub phdr_vaddr: u64,
}

/// Reads the `PT_INTERP` of the ELF file at `path`: `Ok(None)` for a
/// static program, or a file that is not a 64-bit little-endian ELF (a
/// `#!` script, whose interpreter the kernel finds another way).
pub fn read_interp(path: &Path) -> io::Result<Option<Interp>> {
    let mut f = std::fs::File::open(path)?;
    let mut eh = [0u8; 64];
    match f.read_exact(&mut eh) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    // ELFCLASS64, ELFDATA2LSB.
    if &eh[..4] != b"\x7fELF" || eh[4] != 2 || eh[5] != 1 {
        return Ok(None);
    }
    let phoff = u64_at(&eh, 0x20);
    let phentsize = u16::from_le_bytes([eh[0x36], eh[0x37]]) as usize;
    let phnum = u16::from_le_bytes([eh[0x38], eh[0x39]]) as usize;
    if phentsize < 56 || phnum > MAX_PHDRS {
        return Err(bad(path, "malformed program header table"));
    }
    let mut ph = vec![0u8; phentsize * phnum];
    f.seek(SeekFrom::Start(phoff))?;
    f.read_exact(&mut ph)
        .map_err(|_| bad(path, "program header table past the end of the file"))?;
    let mut interp = None;
    let mut phdr_vaddr = None;
    let mut first_load = None;
    for h in ph.chunks_exact(phentsize) {
        let p_type = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let (offset, vaddr, filesz) = (u64_at(h, 8), u64_at(h, 16), u64_at(h, 32));
        match p_type {
            PT_INTERP => interp = Some((offset, vaddr, filesz)),
            PT_PHDR => phdr_vaddr = Some(vaddr),
            PT_LOAD if first_load.is_none() => first_load = Some((offset, vaddr)),
            _ => {}
        }
    }
    let Some((offset, vaddr, filesz)) = interp else {
        return Ok(None);
    };
    if filesz == 0 || filesz > 4096 {
        return Err(bad(path, "PT_INTERP of an impossible size"));
    }
    // Without PT_PHDR the kernel computes AT_PHDR from the first PT_LOAD
    // that covers the table's file offset; the first one always does in
    // practice (it starts at offset 0).
    let phdr_vaddr = match (phdr_vaddr, first_load) {
        (Some(v), _) => v,
        (None, Some((load_off, load_vaddr))) => {
            load_vaddr.wrapping_add(phoff.wrapping_sub(load_off))
        }
        (None, None) => return Err(bad(path, "PT_INTERP without a PT_LOAD")),
    };
    let mut s = vec![0u8; filesz as usize];
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(&mut s)
        .map_err(|_| bad(path, "PT_INTERP past the end of the file"))?;
    let len = s.iter().position(|&b| b == 0).unwrap_or(s.len());
    s.truncate(len);
    if s.is_empty() {
        return Err(bad(path, "empty PT_INTERP"));
    }
    Ok(Some(Interp {
        path: s,
        offset,
        vaddr,
        phdr_vaddr,
    }))
}

/// Overwrites the `PT_INTERP` string of the (writable, private) file at
/// `path` with `name`, which must be exactly as long as the old one: every
/// other byte of the file, and so its memory layout, stays the same.
pub fn rewrite_interp(path: &Path, interp: &Interp, name: &[u8]) -> io::Result<()> {
    if name.len() != interp.path.len() || name.contains(&0) {
        return Err(io::Error::other(format!(
            "a loader name of {} bytes cannot replace one of {}",
            name.len(),
            interp.path.len()
        )));
    }
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all_at(name, interp.offset)
}

/// Keeps, in the trace being written, the loader the program at `exe`
/// (content `exe_file` in the trace) names: the kernel maps it at exec, so
/// no `mmap` brings it into the trace. The loader's path is looked up under
/// `root` (the tracee's root directory, `/proc/TID/root`). A program
/// without one (static, a script) or a loader that cannot be read leaves
/// the header as it is (replay then uses the host's, as older traces do),
/// with a warning for the latter.
pub fn keep_loader(writer: &mut TraceWriter, exe: &Path, exe_file: &FileId, root: &Path) {
    if writer
        .header_mut()
        .loaders
        .iter()
        .any(|l| l.exe_file == exe_file.0)
    {
        return;
    }
    let interp = match read_interp(exe) {
        Ok(Some(i)) => i,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(exe = %exe.display(), error = %e, "cannot read the program's ELF interpreter");
            return;
        }
    };
    let loader = Path::new(std::ffi::OsStr::from_bytes(&interp.path));
    match writer.add_file(&under_root(root, loader)) {
        Ok(file) => writer.header_mut().loaders.push(LoaderCopy {
            exe_file: exe_file.0.clone(),
            path: loader.to_string_lossy().into_owned(),
            file: file.0,
        }),
        Err(e) => tracing::warn!(
            loader = %loader.display(),
            error = %e,
            "cannot keep the program's loader in the trace: replay will use the replay host's"
        ),
    }
}

/// `path` (absolute) as seen from the root directory `root`.
fn under_root(root: &Path, path: &Path) -> std::path::PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// A `#!` script's first line, as the kernel reads it (`binfmt_script`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shebang {
    /// The interpreter's path.
    pub interp: Vec<u8>,
    /// Where it starts in the file.
    pub offset: usize,
    /// Whether an argument follows it (the kernel passes it as one).
    pub has_arg: bool,
}

/// The kernel reads this much of a file to recognise its format.
const BINPRM_BUF_SIZE: usize = 256;

/// Reads the `#!` line of the file at `path`: `Ok(None)` when it is not a
/// script.
pub fn read_shebang(path: &Path) -> io::Result<Option<Shebang>> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; BINPRM_BUF_SIZE];
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    buf.truncate(n);
    Ok(parse_shebang(&buf))
}

/// [`read_shebang`] of the file's first bytes.
pub fn parse_shebang(buf: &[u8]) -> Option<Shebang> {
    let rest = buf.strip_prefix(b"#!")?;
    let line_end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let line = &rest[..line_end];
    let is_blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = line.iter().position(|b| !is_blank(b))?;
    let len = line[start..]
        .iter()
        .position(|b| is_blank(b) || *b == 0)
        .unwrap_or(line.len() - start);
    let after = &line[start + len..];
    let has_arg = after.iter().take_while(|&&b| b != 0).any(|b| !is_blank(b));
    (len > 0).then(|| Shebang {
        interp: line[start..start + len].to_vec(),
        offset: 2 + start,
        has_arg,
    })
}

/// For a `#!` script exec'd as `script` (content `script_file` in the
/// trace), keeps the interpreter the kernel ran (the exec'd thread's
/// `proc_exe`) and that interpreter's loader (looked up under `root`, the
/// thread's `/proc/TID/root`), so that replay runs them and not the replay
/// host's. An interpreter that is a script itself (the kernel follows up
/// to 4) is kept too, with its own interpreter, down to the program.
pub fn keep_script_interpreter(
    writer: &mut TraceWriter,
    script: &Path,
    script_file: &FileId,
    proc_exe: &Path,
    root: &Path,
) {
    keep_chain(writer, script, script_file, proc_exe, root, 0);
}

/// The kernel's limit on interpreters that are scripts
/// (`BINPRM_MAX_RECURSION`): a chain of this many scripts and more fails to
/// exec.
const MAX_SCRIPT_CHAIN: usize = 5;

/// [`keep_script_interpreter`] for the script at `depth` in the chain.
fn keep_chain(
    writer: &mut TraceWriter,
    script: &Path,
    script_file: &FileId,
    proc_exe: &Path,
    root: &Path,
    depth: usize,
) {
    let shebang = match read_shebang(script) {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(script = %script.display(), error = %e, "cannot read the script's #! line");
            return;
        }
    };
    if writer
        .header_mut()
        .interpreters
        .iter()
        .any(|i| i.script_file == script_file.0)
    {
        return;
    }
    let named = Path::new(std::ffi::OsStr::from_bytes(&shebang.interp));
    // A relative name is the thread's working directory's (a sibling of
    // its root in /proc/TID).
    let found = if named.is_absolute() {
        under_root(root, named)
    } else {
        root.with_file_name("cwd").join(named)
    };
    let is_script = matches!(read_shebang(&found), Ok(Some(_)));
    if is_script && depth + 1 >= MAX_SCRIPT_CHAIN {
        return; // The exec failed (ELOOP): nothing ran.
    }
    // The program at the chain's end is what the kernel ran.
    let source = if is_script { found.as_path() } else { proc_exe };
    match writer.add_file(source) {
        Ok(file) => {
            if is_script {
                keep_chain(writer, &found, &file, proc_exe, root, depth + 1);
            } else {
                keep_loader(writer, proc_exe, &file, root);
            }
            writer.header_mut().interpreters.push(InterpreterCopy {
                script_file: script_file.0.clone(),
                path: named.to_string_lossy().into_owned(),
                file: file.0,
            });
        }
        Err(e) => tracing::warn!(
            interpreter = %named.display(),
            error = %e,
            "cannot keep the script's interpreter in the trace: replay will use the replay host's"
        ),
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

fn bad(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `#!` line as the kernel's binfmt_script reads it: the
    /// interpreter ends at a blank, a NUL or the line's end; anything but
    /// blanks after it is one argument.
    #[test]
    fn parses_shebang_lines() {
        let s = parse_shebang(b"#!/bin/sh\necho hi\n").unwrap();
        assert_eq!(
            (s.interp.as_slice(), s.offset, s.has_arg),
            (&b"/bin/sh"[..], 2, false)
        );
        let s = parse_shebang(b"#! \t/usr/bin/env python3 -u\n").unwrap();
        assert_eq!(
            (s.interp.as_slice(), s.offset, s.has_arg),
            (&b"/usr/bin/env"[..], 4, true)
        );
        let s = parse_shebang(b"#!/bin/sh \t \n").unwrap();
        assert!(!s.has_arg);
        // No newline within what the kernel reads: the line ends there.
        let s = parse_shebang(b"#!/bin/bash").unwrap();
        assert_eq!(s.interp, b"/bin/bash");
        assert_eq!(parse_shebang(b"#!\n/bin/sh\n"), None);
        assert_eq!(parse_shebang(b"#!   \n"), None);
        assert_eq!(parse_shebang(b"\x7fELF\x02\x01"), None);
        assert_eq!(parse_shebang(b""), None);
    }

    /// The running test binary is a dynamically linked PIE with a loader.
    #[test]
    fn reads_the_interp_of_a_dynamic_program() {
        let exe = std::env::current_exe().unwrap();
        let interp = read_interp(&exe)
            .unwrap()
            .expect("a dynamic test binary has PT_INTERP");
        let loader = String::from_utf8(interp.path.clone()).unwrap();
        assert!(
            loader.starts_with('/') && loader.contains("ld-linux"),
            "{loader}"
        );
        let bytes = std::fs::read(&exe).unwrap();
        let at = interp.offset as usize;
        assert_eq!(&bytes[at..at + interp.path.len()], &interp.path[..]);
        assert_eq!(bytes[at + interp.path.len()], 0);
    }

    #[test]
    fn no_interp_for_scripts_and_short_files() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s");
        std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
        assert_eq!(read_interp(&script).unwrap(), None);
        std::fs::write(&script, "\x7fELF").unwrap();
        assert_eq!(read_interp(&script).unwrap(), None);
    }

    #[test]
    fn rewrites_only_the_interp_string() {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("p");
        let exe = std::env::current_exe().unwrap();
        std::fs::copy(&exe, &copy).unwrap();
        let interp = read_interp(&copy).unwrap().unwrap();
        let name = vec![b'l'; interp.path.len()];
        rewrite_interp(&copy, &interp, &name).unwrap();
        let after = read_interp(&copy).unwrap().unwrap();
        assert_eq!(after.path, name);
        let (a, b) = (std::fs::read(&exe).unwrap(), std::fs::read(&copy).unwrap());
        assert_eq!(a.len(), b.len());
        let differing: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
        assert!(differing
            .iter()
            .all(|&i| (interp.offset as usize..interp.offset as usize + name.len()).contains(&i)));
        // A name of another length is refused.
        assert!(rewrite_interp(&copy, &interp, b"/x").is_err());
    }
}
