//! `rrtest-sys`: cargo-rrtest's operating-system layer and the only crate
//! with `unsafe` code: ptrace, tracee memory, process creation with the
//! recorder's setup, seccomp, perf counters, signal-free threads, CPU
//! instructions, file-descriptor passing, the per-user cache directories, and
//! bounded reads of regular files only (`bounded`).
//!
//! Everything here is a thin, typed wrapper: policy lives in the recorder and
//! replayer. docs/unsafe.md lists every unsafe module.
//!
//! It is the bottom layer: it depends on no other cargo-rrtest crate but the
//! preload ABI (`rrtest-abi`), and knows nothing of traces, the recorder, the
//! replayer or reports (what they need from it, such as [`mem::MemReader`]
//! and [`cpu::CpuidLeaf`], is defined here).
#![allow(unsafe_code)]

pub mod bounded;
pub mod cpu;
pub mod dirs;
pub mod fdpass;
pub mod mem;
pub mod perf;
pub mod ptrace;
pub mod seccomp;
pub mod signals;
pub mod spawn;

pub use mem::RemoteMem;
pub use ptrace::{Regs, WaitEvent};
