//! The only module tree with `unsafe` code: ptrace, tracee memory, process
//! creation with the recorder's setup, seccomp, and CPU instructions.
//!
//! Everything here is a thin, typed wrapper: policy lives in the recorder and
//! replayer. docs/unsafe.md lists every unsafe module.
#![allow(unsafe_code)]

pub mod cpu;
pub mod fdpass;
pub mod mem;
pub mod perf;
pub mod ptrace;
pub mod seccomp;
pub mod signals;
pub mod spawn;

pub use mem::RemoteMem;
pub use ptrace::{Regs, WaitEvent};
