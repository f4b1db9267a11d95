//! The processes of a recorded tree, read from the trace, and which one
//! `--process PID|N` names: [`RecordedProcess`], [`processes`], [`pick`].
//!
//! The first process is the program the recording started (its `Exec` is
//! event 0); every `NewTask` without `CLONE_THREAD` adds one, in the order
//! they were created. A process's executable is the one it was created
//! with (its parent's, for a fork): what gdb loads symbols from. (A later
//! exec of the debugged process is not followed: gdb keeps those symbols.)
//!
//! This file must not replay anything: it reads the event stream.

use std::collections::HashMap;
use std::path::PathBuf;

use rrtest_trace::{Event, Tid, TraceReader};

/// One process of the recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedProcess {
    /// Its recorded pid.
    pub pid: Tid,
    /// The process that created it (none for the first).
    pub parent: Option<Tid>,
    /// Its executable as the recording named it.
    pub exe: String,
    /// The trace's copy of that executable.
    pub exe_copy: PathBuf,
}

/// Every process of the recording in `trace_dir`, in the order they were
/// created (the first is the program's). An unreadable trace gives those
/// read before the error.
pub fn processes(trace_dir: &std::path::Path) -> Vec<RecordedProcess> {
    let mut out: Vec<RecordedProcess> = Vec::new();
    let Ok(mut reader) = TraceReader::open(trace_dir) else {
        return out;
    };
    // thread -> its process.
    let mut process_of: HashMap<Tid, Tid> = HashMap::new();
    while let Ok(Some(event)) = reader.next_event() {
        match event {
            Event::Exec(exec) if out.is_empty() => {
                process_of.insert(exec.tid, exec.tid);
                out.push(RecordedProcess {
                    pid: exec.tid,
                    parent: None,
                    exe_copy: reader.file_path(&exec.exe_file),
                    exe: exec.exe,
                });
            }
            Event::NewTask {
                parent,
                child,
                flags,
            } => {
                let parent_pid = *process_of.get(&parent).unwrap_or(&parent);
                if flags & libc::CLONE_THREAD as u64 != 0 {
                    process_of.insert(child, parent_pid);
                    continue;
                }
                process_of.insert(child, child);
                let Some(from) = out.iter().find(|p| p.pid == parent_pid).cloned() else {
                    continue;
                };
                out.push(RecordedProcess {
                    pid: child,
                    parent: Some(parent_pid),
                    exe: from.exe,
                    exe_copy: from.exe_copy,
                });
            }
            _ => {}
        }
    }
    out
}

/// The process `spec` names among `procs`: a recorded pid, else the
/// `spec`-th process (1 is the program's first). An error lists them.
pub fn pick(procs: &[RecordedProcess], spec: u32) -> Result<&RecordedProcess, String> {
    let by_pid = procs.iter().find(|p| u32::try_from(p.pid) == Ok(spec));
    let by_index = spec
        .checked_sub(1)
        .and_then(|i| procs.get(usize::try_from(i).ok()?));
    by_pid.or(by_index).ok_or_else(|| {
        let mut listing = String::new();
        for (i, p) in procs.iter().enumerate() {
            let from = match p.parent {
                Some(parent) => format!("created by {parent}"),
                None => "the program's first".to_string(),
            };
            listing.push_str(&format!("\n  {}: pid {} ({from}): {}", i + 1, p.pid, p.exe));
        }
        format!(
            "the recording has no process {spec} (neither a recorded pid nor a number from 1 \
             to {}); its processes:{listing}",
            procs.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: Tid, parent: Option<Tid>) -> RecordedProcess {
        RecordedProcess {
            pid,
            parent,
            exe: "/bin/prog".into(),
            exe_copy: PathBuf::from("files/x"),
        }
    }

    #[test]
    fn picks_by_pid_then_by_number() {
        let procs = [
            proc(4000, None),
            proc(4005, Some(4000)),
            proc(2, Some(4005)),
        ];
        assert_eq!(pick(&procs, 4005).unwrap().pid, 4005);
        assert_eq!(pick(&procs, 1).unwrap().pid, 4000);
        // A recorded pid wins over a number.
        assert_eq!(pick(&procs, 2).unwrap().pid, 2);
        assert_eq!(pick(&procs, 3).unwrap().pid, 2);
        let err = pick(&procs, 9).unwrap_err();
        assert!(err.contains("no process 9") && err.contains("2: pid 4005 (created by 4000)"));
        assert!(pick(&procs, 0).is_err());
    }
}
