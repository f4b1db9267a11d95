//! Output functions of the calls a program makes to observe itself or
//! other processes: `perf_event_open` (its counters are read with `read`,
//! recorded like any read; its ioctls are in [`super::IOCTLS`]), the `bpf`
//! map commands, and `process_vm_readv`/`process_vm_writev`. Layouts from
//! the kernel's uapi headers (`linux/bpf.h`, x86-64).
//!
//! All are emulated in replay: the descriptors they return do not exist
//! there, and every call on them is emulated too.

use super::outputs::{push, read_u32, read_u64, ret_len, scatter};
use super::{Call, MemReader, Region, Unsupported};

// bpf(2) commands.
const BPF_MAP_CREATE: u64 = 0;
const BPF_MAP_LOOKUP_ELEM: u64 = 1;
const BPF_MAP_UPDATE_ELEM: u64 = 2;
const BPF_MAP_DELETE_ELEM: u64 = 3;
const BPF_MAP_GET_NEXT_KEY: u64 = 4;
const BPF_OBJ_GET_INFO_BY_FD: u64 = 15;
const BPF_MAP_LOOKUP_AND_DELETE_ELEM: u64 = 21;
const BPF_MAP_FREEZE: u64 = 22;

/// `perf_event_open(attr, pid, cpu, group_fd, flags)`: on `E2BIG` the
/// kernel stores the size of `struct perf_event_attr` it knows in the
/// attribute's `size` field (offset 4); on success it writes nothing.
pub(crate) fn perf_event_open(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret == -i64::from(libc::E2BIG) {
        push(out, c.args[0] + 4, 4);
    }
    Ok(())
}

/// A bpf map's key and value sizes and type, from the tracee's fdinfo of
/// its descriptor.
fn map_shape(c: &Call, mem: &dyn MemReader, fd: u32) -> Result<(u64, u64), Unsupported> {
    let info = mem.fd_info(fd as i32).ok_or_else(|| {
        Unsupported(format!(
            "bpf command {}: descriptor {fd} is no bpf map the recorder can see",
            c.args[0]
        ))
    })?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
    };
    let (Some(kind), Some(key), Some(value)) =
        (field("map_type:"), field("key_size:"), field("value_size:"))
    else {
        return Err(Unsupported(format!(
            "bpf command {}: descriptor {fd} is no bpf map",
            c.args[0]
        )));
    };
    // BPF_MAP_TYPE_PERCPU_HASH, _PERCPU_ARRAY, _LRU_PERCPU_HASH,
    // _PERCPU_CGROUP_STORAGE: a value per possible CPU.
    if matches!(kind, 5 | 6 | 10 | 20) {
        return Err(Unsupported(format!(
            "bpf lookups in a per-CPU map (type {kind}) are not recorded"
        )));
    }
    Ok((key, value))
}

/// `bpf(cmd, attr, size)`: the map commands. A lookup writes the value at
/// `attr->value` (offset 16), `GET_NEXT_KEY` the key at `attr->next_key`
/// (offset 16), their sizes the map's; `OBJ_GET_INFO_BY_FD` writes
/// `info_len` (offset 4) and that many bytes at `attr->info` (offset 8).
/// Other commands (loading programs, attaching them) are unsupported.
pub(crate) fn bpf(c: &Call, mem: &dyn MemReader, out: &mut Vec<Region>) -> Result<(), Unsupported> {
    if c.ret < 0 {
        return Ok(());
    }
    let attr = c.args[1];
    match c.args[0] {
        BPF_MAP_CREATE | BPF_MAP_UPDATE_ELEM | BPF_MAP_DELETE_ELEM | BPF_MAP_FREEZE => {}
        BPF_MAP_LOOKUP_ELEM | BPF_MAP_LOOKUP_AND_DELETE_ELEM | BPF_MAP_GET_NEXT_KEY => {
            let fd = read_u32(c, mem, attr, "bpf_attr.map_fd")?;
            let (key, value) = map_shape(c, mem, fd)?;
            let to = read_u64(c, mem, attr + 16, "bpf_attr.value")?;
            let len = if c.args[0] == BPF_MAP_GET_NEXT_KEY {
                key
            } else {
                value
            };
            push(out, to, len);
        }
        BPF_OBJ_GET_INFO_BY_FD => {
            push(out, attr + 4, 4);
            let len = read_u32(c, mem, attr + 4, "bpf_attr.info_len")?;
            let info = read_u64(c, mem, attr + 8, "bpf_attr.info")?;
            push(out, info, u64::from(len));
        }
        cmd => return Err(Unsupported(format!("bpf command {cmd} is not supported"))),
    }
    Ok(())
}

/// `process_vm_readv(pid, local_iov, liovcnt, remote_iov, riovcnt, flags)`:
/// the bytes read, scattered over the local iovecs.
pub(crate) fn process_vm_readv(
    c: &Call,
    mem: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret <= 0 {
        return Ok(());
    }
    scatter(c, mem, c.args[1], c.args[2], ret_len(c), out)
}

/// `process_vm_writev(pid, local_iov, liovcnt, remote_iov, riovcnt,
/// flags)`: the bytes written, scattered over the remote iovecs. Those are
/// this process's memory only when `pid` is its own: the recorder
/// describes a write into another process without them
/// (`recorder/session/syscall.rs`: a tracee write of the other process).
pub(crate) fn process_vm_writev(
    c: &Call,
    mem: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret <= 0 {
        return Ok(());
    }
    scatter(c, mem, c.args[3], c.args[4], ret_len(c), out)
}
