//! Replaying a tracer's `PTRACE_SETREGSET` of `NT_X86_XSTATE` (a
//! [`rrtest_trace::WriteKind::XState`] tracee write): the XSAVE area's
//! layout is the CPU's and its enabled states' (`XCR0`), so the recorded
//! area is applied only on a host where both are the recording host's;
//! elsewhere replay stops with an error that says why. Must not: apply
//! anything else.

use rrtest_sys::ptrace;

/// `NT_X86_XSTATE` (`<linux/elf.h>`).
const NT_X86_XSTATE: u64 = 0x202;

/// The most bytes asked of the kernel for the area (as the recorder asks).
const XSTATE_ASK: usize = 64 * 1024;

/// Whether an area recorded with `recorded_xcr0`, `recorded_len` bytes
/// long, has this host's layout: its `XCR0` is `host_xcr0` and its
/// kernel's area is `host_len` bytes. The refusal says both.
pub(super) fn same_layout(
    recorded_xcr0: u64,
    recorded_len: usize,
    host_xcr0: u64,
    host_len: usize,
) -> Result<(), String> {
    if recorded_xcr0 == host_xcr0 && recorded_len == host_len {
        return Ok(());
    }
    Err(format!(
        "the program's tracer wrote its tracee's extended registers (PTRACE_SETREGSET of NT_X86_XSTATE) \
         with the recording host's XSAVE layout (XCR0 {recorded_xcr0:#x}, {recorded_len} bytes); \
         this host's is XCR0 {host_xcr0:#x}, {host_len} bytes, so the write cannot be replayed here \
         (replay it on a host with the same CPU states)"
    ))
}

/// Sets replay's thread `real` to the recorded area, `bytes` being the
/// recording host's `XCR0` (8 bytes, little endian) and the area. `Ok(Err)`:
/// the layouts differ (nothing was applied); `Err`: the kernel refused.
pub(super) fn apply(real: i32, bytes: &[u8]) -> std::io::Result<Result<(), String>> {
    let Some((xcr0, area)) = bytes.split_first_chunk::<8>() else {
        return Ok(Err(format!(
            "an extended-state write of {} bytes",
            bytes.len()
        )));
    };
    let recorded_xcr0 = u64::from_le_bytes(*xcr0);
    let host_len = ptrace::getregset(real, NT_X86_XSTATE, XSTATE_ASK)?.len();
    let host_xcr0 = crate::tracee::host::facts().xcr0;
    if let Err(why) = same_layout(recorded_xcr0, area.len(), host_xcr0, host_len) {
        return Ok(Err(why));
    }
    ptrace::setregset(real, NT_X86_XSTATE, area)?;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_area_of_another_layout_is_refused_naming_both() {
        assert_eq!(same_layout(0xe7, 2696, 0xe7, 2696), Ok(()));
        // Another XCR0 (AVX-512 states off), the same size.
        let why = same_layout(0xe7, 2696, 0x7, 2696).unwrap_err();
        assert!(why.contains("NT_X86_XSTATE"), "{why}");
        assert!(why.contains("XCR0 0xe7, 2696 bytes"), "{why}");
        assert!(why.contains("XCR0 0x7, 2696 bytes"), "{why}");
        // The same XCR0, another size (another CPU's offsets).
        let why = same_layout(0x7, 832, 0x7, 1088).unwrap_err();
        assert!(
            why.contains("832 bytes") && why.contains("1088 bytes"),
            "{why}"
        );
    }
}
