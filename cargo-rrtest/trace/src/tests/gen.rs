//! A deterministic PRNG and generators of random events that reach every
//! variant and every field, including the extremes of each integer type.

use crate::{
    Event, ExecEvent, ExecPoint, ExitStatus, FileId, Header, MemWrite, PatchEvent, PointWords,
    SignalEvent, SignalKind, Stats, SyscallEvent, SyscallExtra, SyscallResult, VdsoCopy, WriteKind,
    FORMAT_VERSION, MAX_POINT_WORDS, POINT_REGS,
};

/// xoshiro256** seeded through splitmix64: small, fast, reproducible.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    pub fn bool(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }

    /// A u64 with an interesting distribution: edges, small, pointer-like,
    /// any bit width.
    pub fn u64(&mut self) -> u64 {
        match self.below(8) {
            0 => [
                0,
                1,
                0x7f,
                0x80,
                u64::MAX,
                u64::MAX - 1,
                1 << 63,
                (1 << 63) - 1,
            ][self.below(8) as usize],
            1 => self.below(300),
            2 => 0x7ffc_0000_0000 + self.below(1 << 32),
            3 => 0x5555_5555_0000 + self.below(1 << 24),
            _ => {
                let bits = self.below(65) as u32;
                if bits == 64 {
                    self.next_u64()
                } else {
                    self.next_u64() & ((1u64 << bits) - 1)
                }
            }
        }
    }

    pub fn i64(&mut self) -> i64 {
        match self.below(4) {
            0 => [0, -1, 1, i64::MIN, i64::MAX, -4095, -38, 64][self.below(8) as usize],
            1 => self.below(600) as i64 - 300,
            _ => self.u64() as i64,
        }
    }

    pub fn i32(&mut self) -> i32 {
        match self.below(3) {
            0 => [0, -1, 1, i32::MIN, i32::MAX, 4_194_304][self.below(6) as usize],
            1 => self.below(100_000) as i32,
            _ => self.next_u64() as i32,
        }
    }

    pub fn u32(&mut self) -> u32 {
        match self.below(2) {
            0 => [0, 1, u32::MAX, 0x80][self.below(4) as usize],
            _ => self.next_u64() as u32,
        }
    }

    pub fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = match self.below(4) {
            0 => 0,
            1 => self.below(9) as usize,
            _ => self.below(max as u64 + 1) as usize,
        };
        let mut v = vec![0u8; len];
        // Mix compressible and random contents.
        if self.bool() {
            for b in &mut v {
                *b = self.next_u64() as u8;
            }
        } else {
            let fill = self.next_u64() as u8;
            v.iter_mut().for_each(|b| *b = fill);
        }
        v
    }

    pub fn string(&mut self) -> String {
        const PIECES: &[&str] = &[
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            "syscall 442 (unknown)",
            "ioctl 0x5401 on fd 3",
            "é",
            "日本",
            "🦀",
            "",
            "a",
            "\0",
            "\n",
        ];
        let n = self.below(5);
        (0..n)
            .map(|_| PIECES[self.below(PIECES.len() as u64) as usize])
            .collect()
    }

    pub fn file_id(&mut self) -> FileId {
        let mut b = [0u8; 16];
        for x in &mut b {
            *x = self.next_u64() as u8;
        }
        crate::codec::file_id_from_bytes(&b)
    }

    pub fn args(&mut self) -> [u64; 6] {
        let mut a = [0u64; 6];
        for x in &mut a {
            *x = if self.below(3) == 0 { 0 } else { self.u64() };
        }
        a
    }

    pub fn result(&mut self) -> SyscallResult {
        let n = match self.below(4) {
            0 | 1 => 0,
            2 => 1,
            _ => self.below(6) as usize,
        };
        let writes = (0..n)
            .map(|_| MemWrite {
                addr: self.u64(),
                data: self.bytes(300),
            })
            .collect();
        let extra = match self.below(3) {
            0 => SyscallExtra::None,
            1 => SyscallExtra::MappedFile {
                file: self.file_id(),
                path: self.string(),
            },
            _ => SyscallExtra::Output {
                fd: self.i32(),
                data: self.bytes(200),
            },
        };
        SyscallResult {
            ret: self.i64(),
            writes,
            extra,
        }
    }

    pub fn point(&mut self) -> ExecPoint {
        let mut regs = [0u64; POINT_REGS];
        regs.iter_mut().for_each(|r| *r = self.u64());
        let ip = self.u64();
        let digest = self.u64();
        let mut words = PointWords::NONE;
        for _ in 0..self.u64() % (MAX_POINT_WORDS as u64 + 1) {
            words.push(self.u64(), self.u64());
        }
        ExecPoint {
            ip,
            regs,
            digest,
            words,
        }
    }

    /// One random event of kind `kind % KINDS`.
    pub fn event_of(&mut self, kind: u64) -> Event {
        match kind % KINDS {
            0 => Event::Exec(ExecEvent {
                tid: self.i32(),
                exe: self.string(),
                exe_file: self.file_id(),
                at_random: {
                    let mut r = [0u8; 16];
                    r.iter_mut().for_each(|b| *b = self.next_u64() as u8);
                    r
                },
                sp: self.u64(),
                ip: self.u64(),
                vdso_copy: match self.next_u64() % 3 {
                    0 => VdsoCopy::Unrecorded,
                    1 => VdsoCopy::Absent,
                    _ => VdsoCopy::At(self.u64().max(1)),
                },
            }),
            1 => Event::Syscall(SyscallEvent {
                tid: self.i32(),
                nr: self.i64(),
                args: self.args(),
                result: self.result(),
            }),
            2 => Event::SyscallEntry {
                tid: self.i32(),
                nr: self.i64(),
                args: self.args(),
            },
            3 => Event::SyscallExit {
                tid: self.i32(),
                nr: self.i64(),
                result: self.result(),
            },
            4 => Event::Rdtsc {
                tid: self.i32(),
                ip: self.u64(),
                tsc: self.u64(),
                aux: if self.bool() { Some(self.u32()) } else { None },
            },
            5 => Event::Signal(SignalEvent {
                tid: self.i32(),
                signo: self.i32(),
                siginfo: self.bytes(128),
                kind: match self.below(5) {
                    0 => SignalKind::Synchronous { ip: self.u64() },
                    1 => SignalKind::AtSyscallExit,
                    2 => SignalKind::Asynchronous { ip: self.u64() },
                    3 => SignalKind::BeforeSyscall { nr: self.i64() },
                    _ => SignalKind::AtPoint(self.point()),
                },
            }),
            6 => Event::NewTask {
                parent: self.i32(),
                child: self.i32(),
                flags: self.u64(),
            },
            7 => Event::ThreadExit { tid: self.i32() },
            8 => Event::ProcessExit {
                pid: self.i32(),
                status: if self.bool() {
                    ExitStatus::Exited(self.i32())
                } else {
                    ExitStatus::Signaled {
                        signo: self.i32(),
                        core: self.bool(),
                    }
                },
            },
            9 => Event::Unsupported {
                tid: self.i32(),
                what: self.string(),
            },
            10 => Event::Preempt {
                tid: self.i32(),
                point: self.point(),
            },
            11 => Event::BufferInit {
                tid: self.i32(),
                hook_entry: self.u64(),
            },
            12 => Event::Buffered {
                tid: self.i32(),
                records: self.bytes(512),
            },
            13 => Event::BufferAbort {
                tid: self.i32(),
                nr: self.i64(),
            },
            14 => {
                let tid = self.i32();
                let target = self.i32();
                let kind = WriteKind::ALL[self.below(WriteKind::ALL.len() as u64) as usize];
                let (addr, bytes) = match kind.size() {
                    None if kind == WriteKind::XState => {
                        let n = WriteKind::MIN_XSTATE_LEN + self.below(3000) as usize;
                        (0, (0..n).map(|_| self.next_u64() as u8).collect())
                    }
                    None => (self.u64(), self.bytes(216)),
                    Some(n) => (0, (0..n).map(|_| self.next_u64() as u8).collect()),
                };
                Event::TraceeWrite {
                    tid,
                    target,
                    kind,
                    addr,
                    bytes,
                }
            }
            _ => Event::Patch(PatchEvent {
                tid: self.i32(),
                nr: self.i64(),
                new_page: if self.bool() {
                    Some((self.u64(), self.u64()))
                } else {
                    None
                },
                stub_addr: self.u64(),
                stub: self.bytes(96),
                site: self.u64(),
                site_bytes: self.bytes(16),
                resume: self.u64(),
                ahead: if self.bool() { Some(self.u64()) } else { None },
                rdtsc: self.bool(),
            }),
        }
    }

    /// A random event, syscalls weighted as in real recordings.
    pub fn event(&mut self) -> Event {
        let k = self.below(KINDS + 4);
        self.event_of(if k >= KINDS { 1 } else { k })
    }
}

/// Number of event kinds [`Rng::event_of`] produces.
pub const KINDS: u64 = 16;

/// A header as a recorder would write it.
pub fn header() -> Header {
    Header {
        format_version: FORMAT_VERSION,
        recorder_version: env!("CARGO_PKG_VERSION").into(),
        protocol_version: 1,
        argv: vec!["./prog".into(), "--flag".into(), "arg with space".into()],
        exe: "/tmp/prog".into(),
        env: vec!["PATH=/usr/bin:/bin".into(), "LANG=C.UTF-8".into()],
        cwd: "/tmp".into(),
        kernel: "Linux 6.8.0 x86_64".into(),
        cpuid: vec![crate::CpuidLeaf {
            leaf: 0,
            subleaf: 0,
            regs: [0xd, 0x756e_6547, 0x6c65_746e, 0x4965_6e69],
        }],
        recorded_at: "2026-01-02T03:04:05Z".into(),
        tracee_cpu: Some(3),
        initial_sigmask: None,
        initial_ignored: None,
        stack_limit: None,
        env_removed: Vec::new(),
        hidden_paths: Vec::new(),
        signal_traps_cleared: false,
        own_vdso: false,
        point_digest: None,
        outcome: None,
        unreplayable: vec![],
        stats: Stats::default(),
        verification: None,
        loaders: Vec::new(),
        interpreters: Vec::new(),
        host: None,
        chaos: None,
    }
}

/// Writes a finished trace of `events` (the generated header, exit 0) in
/// `dir`, with the `files/` copies the events name.
pub fn write_trace(dir: &std::path::Path, events: &[Event]) {
    let mut w = crate::TraceWriter::create(dir, header()).expect("create");
    for e in events {
        w.push(e).expect("push");
    }
    w.header_mut().outcome = Some(crate::Outcome::Exited { code: 0 });
    w.finish().expect("finish");
    add_file_copies(dir, events);
}

/// Creates an (empty) `files/<id>` in the trace `dir` for each file that
/// `events` name: the reader checks that they are there.
pub fn add_file_copies(dir: &std::path::Path, events: &[Event]) {
    let files = dir.join(crate::FILES_DIR);
    std::fs::create_dir_all(&files).expect("mkdir files");
    for e in events {
        let id = match e {
            Event::Exec(e) => &e.exe_file,
            Event::Syscall(SyscallEvent { result, .. }) | Event::SyscallExit { result, .. } => {
                match &result.extra {
                    SyscallExtra::MappedFile { file, .. } => file,
                    _ => continue,
                }
            }
            _ => continue,
        };
        std::fs::write(files.join(&id.0), b"").expect("write a file copy");
    }
}
