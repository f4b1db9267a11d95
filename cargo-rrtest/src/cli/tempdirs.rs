//! The temporary directories replays leave behind: an unpacked archive, a
//! preflight's copy, a gdb session's sysroot. Each is removed when its
//! process ends normally; one killed by SIGKILL leaves its directory, which
//! the next replay (`replay.rs`) or gdb session (`gdb.rs`) sweeps.

use std::path::Path;

/// Removes the temporary directories of replays, preflights and gdb
/// sysroots in `base` (`cargo-rrtest-<what>-<pid>-...`, see
/// `trace::pack::PrivateTempDir`, `replayer::gdb::Sysroot`) whose process
/// is gone: what a replay killed by SIGKILL leaves. Only our own
/// directories are touched.
pub(crate) fn sweep_stale(base: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    // /proc/self belongs to our effective uid.
    let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = ["replay", "preflight", "sysroot"]
            .iter()
            .find_map(|what| name.strip_prefix(&format!("cargo-rrtest-{what}-")))
        else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let ours =
            std::fs::symlink_metadata(entry.path()).is_ok_and(|m| m.is_dir() && m.uid() == uid);
        if ours && !crate::util::process_alive(pid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpacked_archives_of_dead_replays_are_swept() {
        let base = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let me = std::process::id();
        let stale = base.path().join(format!("cargo-rrtest-replay-{dead}-1a-0"));
        let stale_preflight = base
            .path()
            .join(format!("cargo-rrtest-preflight-{dead}-1a-0"));
        let stale_sysroot = base
            .path()
            .join(format!("cargo-rrtest-sysroot-{dead}-1a-0"));
        let live = base.path().join(format!("cargo-rrtest-replay-{me}-1a-0"));
        let other = base.path().join(format!("cargo-rrtest-other-{dead}-1a-0"));
        for d in [&stale, &stale_preflight, &stale_sysroot, &live, &other] {
            std::fs::create_dir_all(d.join("trace/files")).unwrap();
        }
        sweep_stale(base.path());
        assert!(!stale.exists() && !stale_preflight.exists() && !stale_sysroot.exists());
        assert!(live.exists() && other.exists());
    }
}
