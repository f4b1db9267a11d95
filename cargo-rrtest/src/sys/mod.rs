//! The only module tree with `unsafe` code: ptrace, remote memory, registers,
//! seccomp, perf events.
#![allow(unsafe_code)]
