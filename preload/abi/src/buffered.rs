//! Which syscalls the hook buffers, and where their output goes (the
//! recorder and the replayer read the same table).
//!
//! A buffered syscall's output is written by the kernel into the record (the
//! output pointer argument is redirected there) and then copied to the user's
//! pointer, so that replay, which fills the record instead of running the
//! syscall, reproduces the memory write through the same code.

/// Syscall numbers (x86-64) of the buffered set.
#[allow(missing_docs)]
pub mod nr {
    pub const READ: u64 = 0;
    pub const WRITE: u64 = 1;
    pub const CLOSE: u64 = 3;
    pub const FSTAT: u64 = 5;
    pub const LSEEK: u64 = 8;
    pub const IOCTL: u64 = 16;
    pub const PREAD64: u64 = 17;
    pub const PWRITE64: u64 = 18;
    pub const GETPID: u64 = 39;
    pub const GETTID: u64 = 186;
    pub const CLOCK_GETTIME: u64 = 228;
    pub const OPENAT: u64 = 257;
    pub const NEWFSTATAT: u64 = 262;
    pub const GETRANDOM: u64 = 318;
    pub const STATX: u64 = 332;
}

/// `sizeof(struct stat)` on x86-64.
pub const STAT_SIZE: u32 = 144;
/// `sizeof(struct statx)`.
pub const STATX_SIZE: u32 = 256;
/// `sizeof(struct timespec)`.
pub const TIMESPEC_SIZE: u32 = 16;

/// How long a syscall's output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutLen {
    /// A fixed-size structure, written when the result is 0.
    Fixed(u32),
    /// Up to argument `n` bytes; the result says how many were written.
    Arg(usize),
}

/// The output of a buffered syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    /// Which argument is the output pointer.
    pub ptr_arg: usize,
    /// How long the output is.
    pub len: OutLen,
}

/// How the hook handles a buffered syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Its output, if it writes user memory.
    pub output: Option<Output>,
    /// It may block indefinitely (pipes, sockets, FIFOs): buffered only with
    /// a desched event armed around it.
    pub may_block: bool,
}

const fn plan(output: Option<Output>, may_block: bool) -> Option<Plan> {
    Some(Plan { output, may_block })
}

const fn out(ptr_arg: usize, len: OutLen) -> Option<Output> {
    Some(Output { ptr_arg, len })
}

/// The plan for syscall `nr`, or `None` when it is not buffered.
pub const fn plan_for(nr: u64) -> Option<Plan> {
    match nr {
        nr::READ => plan(out(1, OutLen::Arg(2)), true),
        nr::PREAD64 => plan(out(1, OutLen::Arg(2)), false),
        nr::WRITE => plan(None, true),
        nr::OPENAT => plan(None, true),
        nr::PWRITE64 | nr::CLOSE | nr::LSEEK | nr::GETPID | nr::GETTID => plan(None, false),
        nr::CLOCK_GETTIME => plan(out(1, OutLen::Fixed(TIMESPEC_SIZE)), false),
        nr::GETRANDOM => plan(out(0, OutLen::Arg(1)), false),
        nr::FSTAT => plan(out(1, OutLen::Fixed(STAT_SIZE)), false),
        nr::NEWFSTATAT => plan(out(2, OutLen::Fixed(STAT_SIZE)), false),
        nr::STATX => plan(out(4, OutLen::Fixed(STATX_SIZE)), false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_libc() {
        let pairs = [
            (nr::READ, libc::SYS_read),
            (nr::WRITE, libc::SYS_write),
            (nr::CLOSE, libc::SYS_close),
            (nr::FSTAT, libc::SYS_fstat),
            (nr::LSEEK, libc::SYS_lseek),
            (nr::IOCTL, libc::SYS_ioctl),
            (nr::PREAD64, libc::SYS_pread64),
            (nr::PWRITE64, libc::SYS_pwrite64),
            (nr::GETPID, libc::SYS_getpid),
            (nr::GETTID, libc::SYS_gettid),
            (nr::CLOCK_GETTIME, libc::SYS_clock_gettime),
            (nr::OPENAT, libc::SYS_openat),
            (nr::NEWFSTATAT, libc::SYS_newfstatat),
            (nr::GETRANDOM, libc::SYS_getrandom),
            (nr::STATX, libc::SYS_statx),
        ];
        for (ours, theirs) in pairs {
            assert_eq!(ours, theirs as u64);
        }
        assert_eq!(STAT_SIZE as usize, core::mem::size_of::<libc::stat>());
        assert_eq!(STATX_SIZE as usize, core::mem::size_of::<libc::statx>());
        assert_eq!(
            TIMESPEC_SIZE as usize,
            core::mem::size_of::<libc::timespec>()
        );
    }

    #[test]
    fn output_shapes() {
        assert_eq!(
            plan_for(nr::READ).and_then(|p| p.output),
            out(1, OutLen::Arg(2))
        );
        assert_eq!(
            plan_for(nr::STATX)
                .and_then(|p| p.output)
                .map(|o| o.ptr_arg),
            Some(4)
        );
        assert!(plan_for(nr::WRITE).is_some_and(|p| p.may_block && p.output.is_none()));
        // Never buffered: process-shape syscalls and unknown numbers.
        for n in [56, 57, 58, 59, 15, 1000] {
            assert_eq!(plan_for(n), None, "syscall {n}");
        }
    }
}
