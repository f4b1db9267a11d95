#!/usr/bin/env bash
# Checks the preload library that cargo-rrtest embeds (DESIGN.md §5, STYLE.md
# "The preload"):
#   1. it is an x86-64 shared object with an .init_array constructor that
#      exports `syscall_hook`;
#   2. it imports nothing: no undefined dynamic symbols (libc's memcpy,
#      __cxa_finalize, ... included) and no DT_NEEDED entries;
#   3. it contains no panic or unwinding machinery (core::panicking,
#      core::fmt, rust_begin_unwind, _Unwind_*, eh_personality);
#   4. it works: a C harness maps a fixed page and a locals page the way the
#      recorder does, dlopen()s the library (its constructor performs the
#      handshake and gets -ENOSYS: no recorder), and calls `syscall_hook` for
#      getpid, pread64 and clock_gettime, checking results and records.
# Usage: scripts/check-preload.sh [path/to/librrtest_preload.so]
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "check-preload: FAIL: $*" >&2; exit 1; }

so="${1:-}"
if [ -z "$so" ]; then
    # The build script's OUT_DIR, as cargo reports it (not a guess among
    # several target/debug/build/cargo-rrtest-* directories).
    out_dir=$(cargo build -p cargo-rrtest --lib --message-format=json 2>/dev/null \
        | grep '"reason":"build-script-executed"' \
        | grep '"package_id":"path+[^"]*/cargo-rrtest#' \
        | sed -E 's/.*"out_dir":"([^"]*)".*/\1/' | tail -n 1 || true)
    [ -n "$out_dir" ] || fail "cargo did not report cargo-rrtest's build script output directory"
    so="$out_dir/librrtest_preload.so"
fi
[ -s "$so" ] || fail "$so is missing or empty"
echo "check-preload: $so ($(stat -c %s "$so") bytes)"

# 1. Shape.
readelf -h "$so" | grep -q 'Type:.*DYN' || fail "not a shared object"
readelf -h "$so" | grep -q 'Machine:.*X86-64' || fail "not x86-64"
readelf -d "$so" | grep -q 'INIT_ARRAY' || fail "no .init_array constructor"
nm -D --defined-only "$so" | grep -qw 'syscall_hook' || fail "syscall_hook is not exported"
nm -D --defined-only "$so" | grep -qw 'rrtest_init_params' || fail "rrtest_init_params is not exported"

# 2. Imports.
undefined=$(nm -D --undefined-only "$so" || true)
[ -z "$undefined" ] || fail "imports symbols:
$undefined"
needed=$(readelf -d "$so" | grep NEEDED || true)
[ -z "$needed" ] || fail "needs libraries:
$needed"

# 3. Panic and unwinding machinery, in symbols and in strings.
pattern='rust_begin_unwind|_ZN4core9panicking|core::panicking|panic_bounds_check|_ZN4core3fmt|core::fmt|_Unwind_|eh_personality|rust_panic'
found=$( { nm "$so" 2>/dev/null || true; strings -a "$so"; } | grep -E "$pattern" || true)
[ -z "$found" ] || fail "panic or unwinding machinery present:
$found"

# 4. A smoke test of the real library, without a recorder.
if ! command -v cc >/dev/null; then
    echo "check-preload: no C compiler, smoke test skipped" >&2
    echo "check-preload: ok (static checks only)"
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/harness.c" <<'C'
/* Maps the fixed page (syscall; ret entries, no seccomp filter here: the
 * "untraced" entry is an ordinary syscall) and the locals page at the ABI's
 * addresses, loads the preload, and drives syscall_hook directly. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define FIXED 0x70000000UL
struct init_params { uint32_t protocol_version, size; uint64_t hook_entry, syscall_hook, reply_area, reply_area_size, reply_flags; };
struct req { uint64_t nr, args[6]; int64_t result; };
struct locals { uint64_t saved_rsp, alt_stack_top, buffer, buffer_size; int32_t desched_fd; uint32_t flags; uint64_t reserved[3]; };
struct bufhdr { uint32_t magic, capacity, used, num_records, in_flight, abort_commit, aborted, reserved; };
struct rec { uint32_t nr, out_len; int64_t result; uint64_t out_addr; };
static uint64_t buffer[4096];
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "harness: %s:%d: %s\n", __FILE__, __LINE__, #c); return 1; } } while (0)

int main(int argc, char **argv) {
    uint8_t *page = mmap((void *)FIXED, 0x2000, PROT_READ | PROT_WRITE | PROT_EXEC,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    CHECK(page == (void *)FIXED);
    memset(page, 0xcc, 0x60);
    for (int e = 0; e <= 0x20; e += 0x10) { page[e] = 0x0f; page[e + 1] = 0x05; page[e + 2] = 0xc3; }
    /* entry::COPY: mov rcx, rdx; rep movsb; mov rax, rcx; ret; entry::PROBE:
     * movzx eax, [rdi]; mov [rdi], al; xor eax, eax; ret; mov eax, 1; ret
     * (rrtest_abi::copy; no tracer here to fix up a fault: the hook is only
     * given good pointers). */
    memcpy(page + 0x40, "\x48\x89\xd1\xf3\xa4\x48\x89\xc8\xc3", 9);
    memcpy(page + 0x50, "\x0f\xb6\x07\x88\x07\x31\xc0\xc3\xb8\x01\x00\x00\x00\xc3", 14);
    struct locals *tl = (struct locals *)(FIXED + 0x1000);
    tl->desched_fd = -1;

    void *lib = dlopen(argv[1], RTLD_NOW);
    if (!lib) { fprintf(stderr, "harness: %s\n", dlerror()); return 1; }
    uint32_t (*hook)(struct req *) = (uint32_t (*)(struct req *))dlsym(lib, "syscall_hook");
    CHECK(hook != NULL);
    /* The constructor ran and filled in the handshake request. */
    struct init_params *ip = dlsym(lib, "rrtest_init_params");
    CHECK(ip != NULL && ip->protocol_version == 2 && ip->size == sizeof *ip);
    CHECK(ip->syscall_hook == (uint64_t)hook && ip->hook_entry != 0 && ip->reply_area == 0);

    struct req r = { .nr = SYS_getpid };
    CHECK(hook(&r) == 1);                     /* no buffer yet: bail */

    struct bufhdr *h = (struct bufhdr *)buffer;
    h->magic = 0x42535252; /* "RRSB" */
    h->capacity = sizeof buffer - sizeof *h;
    tl->buffer = (uint64_t)buffer;
    tl->buffer_size = sizeof buffer;

    r = (struct req){ .nr = SYS_getpid };
    CHECK(hook(&r) == 0 && r.result == getpid());

    int fd = open(argv[1], O_RDONLY);
    CHECK(fd >= 0);
    char got[4] = {0};
    r = (struct req){ .nr = SYS_pread64, .args = { fd, (uint64_t)got, 4, 0 } };
    CHECK(hook(&r) == 0 && r.result == 4 && memcmp(got, "\177ELF", 4) == 0);

    struct timespec ts = {0};
    r = (struct req){ .nr = SYS_clock_gettime, .args = { CLOCK_MONOTONIC, (uint64_t)&ts } };
    CHECK(hook(&r) == 0 && r.result == 0 && (ts.tv_sec != 0 || ts.tv_nsec != 0));

    r = (struct req){ .nr = SYS_write, .args = { 1, (uint64_t)"x", 1 } };
    CHECK(hook(&r) == 1);                     /* may block, no desched event */
    r = (struct req){ .nr = SYS_clone };
    CHECK(hook(&r) == 1);                     /* never buffered */

    CHECK(h->num_records == 3 && h->in_flight == 0);
    struct rec *rec = (struct rec *)(h + 1);
    CHECK(rec->nr == SYS_getpid && rec->result == getpid() && rec->out_len == 0);
    rec = (struct rec *)((char *)rec + 24);
    CHECK(rec->nr == SYS_pread64 && rec->out_len == 4 && rec->out_addr == (uint64_t)got);
    CHECK(memcmp(rec + 1, "\177ELF", 4) == 0);
    rec = (struct rec *)((char *)rec + 32);
    CHECK(rec->nr == SYS_clock_gettime && rec->out_len == 16 && memcmp(rec + 1, &ts, 16) == 0);
    CHECK(h->used == 24 + 32 + 40);
    puts("harness: ok");
    return 0;
}
C
cc -O1 -o "$work/harness" "$work/harness.c" -ldl || fail "cannot compile the smoke-test harness"
"$work/harness" "$(realpath "$so")" || fail "smoke test failed"
echo "check-preload: ok"
