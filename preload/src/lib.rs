//! The syscall-buffer library injected into every tracee.
//!
//! Placeholder: the syscall buffer (issue 5) turns this crate into a `no_std`
//! cdylib built with `panic=abort` by `cargo-rrtest`'s build script. Until
//! then it only re-exports the protocol version so that the workspace layout
//! of DESIGN.md §3 holds and the ABI crate has a consumer on this side.
#![no_std]

pub use rrtest_abi::PROTOCOL_VERSION;
