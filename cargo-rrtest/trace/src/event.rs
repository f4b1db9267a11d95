//! The events of a recording, in the order they happened.
//!
//! A recording is a sequence of [`Event`]s. Every event belongs to one thread
//! (`tid`, the thread id *as recorded*; the replayer maps recorded ids to its
//! own). Exactly one tracee thread runs user code at a time while recording, so
//! the sequence is also the schedule: replay runs each event on its thread, in
//! order.
//!
//! A syscall that completes without another thread running in between is one
//! [`Event::Syscall`]. A syscall during which the recorder let other threads
//! run (it may block: a futex wait, a pipe read) is split into
//! [`Event::SyscallEntry`] ... other threads' events ... [`Event::SyscallExit`].

/// A thread id, as the kernel numbered it while recording.
pub type Tid = i32;

/// One event of a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The initial program image: the recorder stopped the tracee right after
    /// `execve` and prepared it (fixed page, auxv edits). Always event 0 of a
    /// process.
    Exec(ExecEvent),
    /// A syscall entered and exited with no other event in between.
    Syscall(SyscallEvent),
    /// A syscall entered; its [`Event::SyscallExit`] comes later.
    SyscallEntry {
        /// The thread.
        tid: Tid,
        /// The syscall number.
        nr: i64,
        /// The six argument registers.
        args: [u64; 6],
    },
    /// The exit of the syscall the thread last entered.
    SyscallExit {
        /// The thread.
        tid: Tid,
        /// The syscall number (repeated, for checking).
        nr: i64,
        /// What happened.
        result: SyscallResult,
    },
    /// An emulated `rdtsc` (`aux == None`) or `rdtscp` (`aux == Some(..)`).
    Rdtsc {
        /// The thread.
        tid: Tid,
        /// The instruction's address.
        ip: u64,
        /// The time stamp counter value returned in edx:eax.
        tsc: u64,
        /// For `rdtscp`: the value returned in ecx.
        aux: Option<u32>,
    },
    /// A signal was delivered to a thread.
    Signal(SignalEvent),
    /// A new thread (or process) appeared. Emitted right after the creating
    /// syscall's event.
    NewTask {
        /// The creating thread.
        parent: Tid,
        /// The new thread's recorded id.
        child: Tid,
        /// The clone flags (`CLONE_*`); for fork, `SIGCHLD`.
        flags: u64,
    },
    /// The recorder stopped the thread at an execution point in user code
    /// (it ran too long without a syscall while others waited) and let
    /// other threads run, or the thread stopped there for the program's
    /// own tracer (emulated ptrace: a fault, a single step, a held-back
    /// signal). Replay runs the thread to the same point.
    Preempt {
        /// The thread.
        tid: Tid,
        /// Where it was stopped.
        point: ExecPoint,
    },
    /// The preload library's initialization handshake (syscall
    /// `rrtest_abi::magic::INIT`): the recorder mapped the thread-locals page
    /// and the buffer area at their fixed addresses and answered 0. Replay
    /// does the same at the same stop.
    BufferInit {
        /// The thread.
        tid: Tid,
        /// The library's hook entry (its `InitParams::hook_entry`).
        hook_entry: u64,
    },
    /// Syscalls the thread made through its syscall buffer since its last
    /// event: the buffer's committed records, verbatim (`rrtest_abi`
    /// `RecordHeader`s, each followed by its output bytes). Written just
    /// before the thread's next event. Or, right after an event that
    /// changed it, the process's output table (one record numbered 0xffff,
    /// `tracee::syscallbuf::output_table_record`).
    Buffered {
        /// The thread.
        tid: Tid,
        /// The records.
        records: Vec<u8>,
    },
    /// The recorder unwound the thread out of a buffered syscall that
    /// blocked (or that it had to interrupt): the untraced syscall returned
    /// `-EINTR` with the buffer's `abort_commit` set, so the hook discarded
    /// its record and the stub issued the syscall again, traced.
    BufferAbort {
        /// The thread.
        tid: Tid,
        /// The aborted syscall.
        nr: i64,
    },
    /// The recorder patched a syscall site at the thread's traced syscall
    /// `nr` (stopped at its entry, which is skipped): it wrote `stub` at
    /// `stub_addr` (mapping `new_page` first, when set), `site_bytes` at
    /// `site`, and moved the thread to `resume` with `rax` = `nr`.
    Patch(PatchEvent),
    /// Thread `tid`'s emulated ptrace changed thread `target`, which it
    /// holds stopped as its tracer; `kind` says what: its memory
    /// (`PTRACE_POKEDATA`/`PTRACE_POKETEXT`, `bytes` written at `addr`),
    /// its general registers (`PTRACE_SETREGS` and the like, `bytes` a
    /// `user_regs_struct`), its x87/SSE registers (`PTRACE_SETFPREGS`,
    /// `bytes` the 512-byte `user_fpregs_struct`) or its blocked-signal
    /// mask (`PTRACE_SETSIGMASK`, `bytes` the 8-byte mask as the kernel
    /// set it), or its extended state (`PTRACE_SETREGSET` of
    /// `NT_X86_XSTATE`, `bytes` the recording host's `XCR0` and the XSAVE
    /// area); `addr` is 0 but for memory. Written at the request, before
    /// the tracer's `ptrace` syscall event; replay makes the same change
    /// there.
    TraceeWrite {
        /// The tracer thread.
        tid: Tid,
        /// The thread changed.
        target: Tid,
        /// What of it.
        kind: WriteKind,
        /// Where in memory.
        addr: u64,
        /// What was written.
        bytes: Vec<u8>,
    },
    /// A thread exited (it will produce no more events).
    ThreadExit {
        /// The thread.
        tid: Tid,
    },
    /// The recording ended: the initial process exited, or was killed.
    ProcessExit {
        /// The recorded process (thread group) id.
        pid: Tid,
        /// How it ended.
        status: ExitStatus,
    },
    /// Something the recorder cannot make replayable happened (an unknown
    /// syscall or ioctl, shared memory with the outside, ...). Recording goes
    /// on, and the trace is marked unreplayable with this reason.
    Unsupported {
        /// The thread.
        tid: Tid,
        /// What it was, e.g. `syscall 442 (unknown)` or `ioctl 0x5401 on fd 3`.
        what: String,
    },
}

impl Event {
    /// The thread the event belongs to.
    pub fn tid(&self) -> Tid {
        match self {
            Event::Exec(e) => e.tid,
            Event::Syscall(e) => e.tid,
            Event::SyscallEntry { tid, .. } | Event::SyscallExit { tid, .. } => *tid,
            Event::Rdtsc { tid, .. } => *tid,
            Event::Signal(e) => e.tid,
            Event::NewTask { parent, .. } => *parent,
            Event::Preempt { tid, .. } => *tid,
            Event::BufferInit { tid, .. }
            | Event::Buffered { tid, .. }
            | Event::BufferAbort { tid, .. } => *tid,
            Event::Patch(p) => p.tid,
            Event::TraceeWrite { tid, .. } => *tid,
            Event::ThreadExit { tid } => *tid,
            Event::ProcessExit { pid, .. } => *pid,
            Event::Unsupported { tid, .. } => *tid,
        }
    }

    /// A short name of the event's kind, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Exec(_) => "exec",
            Event::Syscall(_) => "syscall",
            Event::SyscallEntry { .. } => "syscall-entry",
            Event::SyscallExit { .. } => "syscall-exit",
            Event::Rdtsc { .. } => "rdtsc",
            Event::Signal(_) => "signal",
            Event::NewTask { .. } => "new-task",
            Event::Preempt { .. } => "preempt",
            Event::BufferInit { .. } => "buffer-init",
            Event::Buffered { .. } => "buffered",
            Event::BufferAbort { .. } => "buffer-abort",
            Event::Patch(_) => "patch",
            Event::TraceeWrite { .. } => "tracee-write",
            Event::ThreadExit { .. } => "thread-exit",
            Event::ProcessExit { .. } => "process-exit",
            Event::Unsupported { .. } => "unsupported",
        }
    }
}

/// What a [`Event::TraceeWrite`] changed in the tracee. Its byte in the
/// event stream is the discriminant (format version 5; older traces have
/// only `Memory` (0) and `Regs` (1); `RegsAtEntry` (5) and `MemoryAtEntry`
/// (6) since version 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteKind {
    /// Memory at the event's address.
    Memory = 0,
    /// The general registers (`struct user_regs_struct`, 216 bytes).
    Regs = 1,
    /// The x87 and SSE registers (`struct user_fpregs_struct`, the
    /// 512-byte FXSAVE layout).
    FpRegs = 2,
    /// The blocked-signal mask (8 bytes, bit `n - 1` for signal `n`).
    SigMask = 3,
    /// The extended state (`PTRACE_SETREGSET` of `NT_X86_XSTATE`): the
    /// recording host's `XCR0` (8 bytes, little endian), then the whole
    /// XSAVE area as the kernel took it, whose layout `XCR0` and the CPU
    /// decide (at least 576 bytes: the legacy area and the XSAVE header).
    XState = 4,
    /// The general registers (216 bytes, as `Regs`) written at a
    /// syscall-entry stop, before the call ran (format version 7): replay
    /// sets them when the tracee reaches that syscall's entry, not where
    /// the event is (its thread has not got there yet), so that the call
    /// it then makes is the one they name.
    RegsAtEntry = 5,
    /// Memory at the event's address written at a syscall-entry stop
    /// (format version 7): replay writes it when the tracee reaches that
    /// syscall's entry, as `RegsAtEntry`.
    MemoryAtEntry = 6,
}

impl WriteKind {
    /// Every kind, by its byte.
    pub const ALL: [WriteKind; 7] = [
        WriteKind::Memory,
        WriteKind::Regs,
        WriteKind::FpRegs,
        WriteKind::SigMask,
        WriteKind::XState,
        WriteKind::RegsAtEntry,
        WriteKind::MemoryAtEntry,
    ];

    /// Most bytes of an [`WriteKind::XState`] write: `XCR0` and an XSAVE
    /// area of up to 64 KiB (with AMX it is about 11 KiB).
    pub const MAX_XSTATE_LEN: usize = 8 + 64 * 1024;

    /// Fewest bytes of an [`WriteKind::XState`] write: `XCR0`, the
    /// 512-byte legacy area and the 64-byte XSAVE header.
    pub const MIN_XSTATE_LEN: usize = 8 + 576;

    /// The kind whose stream byte is `b`.
    pub fn from_byte(b: u8) -> Option<WriteKind> {
        WriteKind::ALL.get(usize::from(b)).copied()
    }

    /// Its name, for messages and listings.
    pub fn name(self) -> &'static str {
        match self {
            WriteKind::Memory => "memory",
            WriteKind::Regs => "registers",
            WriteKind::FpRegs => "fp registers",
            WriteKind::SigMask => "signal mask",
            WriteKind::XState => "extended state",
            WriteKind::RegsAtEntry => "registers at its syscall's entry",
            WriteKind::MemoryAtEntry => "memory at its syscall's entry",
        }
    }

    /// Made at a syscall-entry stop: applied by replay when the tracee
    /// reaches that syscall's entry.
    pub fn at_entry(self) -> bool {
        matches!(self, WriteKind::RegsAtEntry | WriteKind::MemoryAtEntry)
    }

    /// Memory (at the event's address), wherever applied.
    pub fn is_memory(self) -> bool {
        matches!(self, WriteKind::Memory | WriteKind::MemoryAtEntry)
    }

    /// The size its bytes must have (any for memory, a range for the
    /// extended state).
    pub fn size(self) -> Option<usize> {
        match self {
            WriteKind::Memory | WriteKind::MemoryAtEntry | WriteKind::XState => None,
            WriteKind::Regs | WriteKind::RegsAtEntry => Some(216),
            WriteKind::FpRegs => Some(512),
            WriteKind::SigMask => Some(8),
        }
    }
}

/// The program image after an `execve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecEvent {
    /// The thread (and process) id.
    pub tid: Tid,
    /// The executable as exec'd (absolute path).
    pub exe: String,
    /// Content id of the executable's copy in the trace's `files/`.
    pub exe_file: FileId,
    /// The 16 bytes the kernel put at `AT_RANDOM`; replay writes them back.
    pub at_random: [u8; 16],
    /// The initial stack pointer, for checking.
    pub sp: u64,
    /// The initial instruction pointer, for checking.
    pub ip: u64,
    /// Where the recorder mapped the copy of its own vDSO for programs
    /// that read the kernel's copy of the auxiliary vector (the place of
    /// the recording kernel's vDSO); replay maps it there too.
    pub vdso_copy: VdsoCopy,
}

/// Where an exec's copy of the recorder's own vDSO was mapped (see
/// [`ExecEvent::vdso_copy`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VdsoCopy {
    /// Not recorded: traces of format versions before 4, whose replay maps
    /// the copy where the replaying kernel's vDSO is (version 3) or none
    /// (versions 1 and 2, the vDSO hidden).
    #[default]
    Unrecorded,
    /// None was mapped (the kernel mapped no vDSO, or its place was taken).
    Absent,
    /// At this address (page-aligned, not 0).
    At(u64),
}

/// A complete syscall.
/// A patched syscall site (see [`Event::Patch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchEvent {
    /// The thread stopped at the site's syscall (at the handshake, for a
    /// patch made `ahead`).
    pub tid: Tid,
    /// That syscall.
    pub nr: i64,
    /// A fresh stub page mapped first: (address, length).
    pub new_page: Option<(u64, u64)>,
    /// Where the stub goes.
    pub stub_addr: u64,
    /// The stub's bytes.
    pub stub: Vec<u8>,
    /// The patched region's start.
    pub site: u64,
    /// The bytes written there (a `jmp` to the stub, then `nop`s).
    pub site_bytes: Vec<u8>,
    /// Where the thread resumes (the stub's entry for the site's syscall).
    pub resume: u64,
    /// `Some(addr)`: patched ahead, at the syscall buffer's handshake (the
    /// thread is stopped there, not at the site), for the `syscall` at
    /// `addr`, a site patched in an earlier recording of the same
    /// executable; `resume` is then unused. `None`: the thread is stopped
    /// at the site's syscall and resumes in the stub.
    pub ahead: Option<u64>,
    /// The site is a trapped `rdtsc`'s, not a syscall's (`nr` is 0): the
    /// thread stopped at the rdtsc's trap (`SIGSEGV`), and resumes at the
    /// stub's setup, the trap's signal discarded.
    pub rdtsc: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscallEvent {
    /// The thread.
    pub tid: Tid,
    /// The syscall number.
    pub nr: i64,
    /// The six argument registers at entry.
    pub args: [u64; 6],
    /// What happened.
    pub result: SyscallResult,
}

/// What a syscall did, as far as the tracee can see.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyscallResult {
    /// The return value (`rax`), negative errno on failure.
    pub ret: i64,
    /// Every range of tracee memory the kernel wrote, with the bytes.
    pub writes: Vec<MemWrite>,
    /// Extra facts replay needs for this syscall.
    pub extra: SyscallExtra,
}

/// Extra, syscall-specific facts replay needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SyscallExtra {
    /// Nothing.
    #[default]
    None,
    /// A file-backed `mmap`: replay maps the trace's copy instead.
    MappedFile {
        /// Content id of the file in the trace's `files/`.
        file: FileId,
        /// The path the file had while recording (informational).
        path: String,
    },
    /// Bytes the program wrote to its stdout (fd 1) or stderr (fd 2); replay
    /// writes them to its own.
    Output {
        /// 1 or 2.
        fd: i32,
        /// The bytes.
        data: Vec<u8>,
    },
}

/// Bytes the kernel wrote into tracee memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemWrite {
    /// Tracee address.
    pub addr: u64,
    /// The bytes.
    pub data: Vec<u8>,
}

/// A delivered signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalEvent {
    /// The thread it was delivered to.
    pub tid: Tid,
    /// The signal number.
    pub signo: i32,
    /// The raw `siginfo_t` (128 bytes).
    pub siginfo: Vec<u8>,
    /// Where it was delivered.
    pub kind: SignalKind,
}

/// How a signal reached its thread, which decides how replay reproduces it.
// `AtPoint` is the large variant (an execution point with its words, about
// 300 bytes): one per event, decoded one at a time; kept inline so that
// points stay `Copy`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalKind {
    /// Raised by the instruction at `ip` (a fault, a trap): it happens again
    /// by itself in replay.
    Synchronous {
        /// Faulting instruction.
        ip: u64,
    },
    /// Sent from elsewhere, and delivered when the thread left the kernel
    /// after a syscall: replay sends it at the same point.
    AtSyscallExit,
    /// Sent from elsewhere, and delivered while the thread ran user code,
    /// at no point the recorder chose: not replayable.
    Asynchronous {
        /// Instruction pointer at delivery.
        ip: u64,
    },
    /// Sent from elsewhere while the thread ran user code; the recorder held
    /// it back and delivered it when the thread next entered a syscall, as
    /// if it had arrived just before: the syscall (`nr`) was skipped and
    /// restarts after the handler returns.
    BeforeSyscall {
        /// The syscall the thread was entering.
        nr: i64,
    },
    /// Sent from elsewhere while the thread ran user code without syscalls;
    /// the recorder stopped the thread and delivered it at this point.
    AtPoint(ExecPoint),
}

/// Number of register values in an [`ExecPoint`].
pub const POINT_REGS: usize = 19;

/// A point in a thread's execution, found again in replay as the first time
/// since the thread's previous event that it is about to execute `ip` with
/// exactly these registers. Threads are serialized and share no memory with
/// the outside, so equal states have equal futures (DESIGN.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecPoint {
    /// The instruction about to execute.
    pub ip: u64,
    /// rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8..r15, rflags (without the
    /// trap and resume flags), fs base, gs base.
    pub regs: [u64; POINT_REGS],
    /// A digest of the state the registers do not show: the FPU/SSE
    /// registers, the stack near the stack pointer, the writable data of
    /// the mapped files and the heap (`tracee::state_digest`). Compared only
    /// where the registers match.
    pub digest: u64,
    /// Memory words that tell this pass through `ip` from the thread's
    /// passes before it in the same registers (a loop counter the digest
    /// does not cover): compared with the registers, before the digest.
    /// Empty for most points (format version 8).
    pub words: PointWords,
}

/// Most [`PointWords`] a point holds.
pub const MAX_POINT_WORDS: usize = 8;

/// Up to [`MAX_POINT_WORDS`] 8-byte memory words of a thread's process at
/// an execution point: each word's address and its value there. The
/// recorder finds them by comparing the thread's memory at two passes
/// through the point's ip in the same registers: words that changed from
/// one turn of a loop to the next (`recorder/session/points.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PointWords {
    len: u8,
    words: [(u64, u64); MAX_POINT_WORDS],
}

impl PointWords {
    /// No words.
    pub const NONE: PointWords = PointWords {
        len: 0,
        words: [(0, 0); MAX_POINT_WORDS],
    };

    /// Adds the word at `addr` of value `value`; false (and nothing added)
    /// when full.
    pub fn push(&mut self, addr: u64, value: u64) -> bool {
        let Some(slot) = self.words.get_mut(usize::from(self.len)) else {
            return false;
        };
        *slot = (addr, value);
        self.len += 1;
        true
    }

    /// The words, as (address, value).
    pub fn as_slice(&self) -> &[(u64, u64)] {
        &self.words[..usize::from(self.len)]
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// `exit(code)`.
    Exited(i32),
    /// Killed by a signal.
    Signaled {
        /// The signal number.
        signo: i32,
        /// Whether it dumped core.
        core: bool,
    },
}

/// Identifies a file copy in the trace's `files/` by content: the hex of a
/// 128-bit hash of the bytes (and the length), which is also its file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub String);
