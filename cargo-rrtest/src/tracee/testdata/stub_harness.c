/* End-to-end harness for the patcher and the preload's hook entry (see
 * ../patch_exec_tests.rs). Built with -no-pie so that its code addresses are the
 * same in every run.
 *
 *   stub_harness describe
 *       prints, per site: name, site address, syscall address, 64 code bytes
 *   stub_harness run <preload.so> <plan>
 *       maps the fixed and locals pages the way the recorder does, loads the
 *       preload, writes each planned stub and patch (plan lines: name
 *       stub_addr hook_slot_offset stub_hex patch_addr patch_hex), then calls
 *       every patched site with the buffer enabled (the hook records) and
 *       disabled (the hook bails to the stub's traced syscall), checking
 *       results, registers, the red zone and the records.
 *
 * Without seccomp, the fixed page's "untraced" entry is an ordinary syscall,
 * which is all this harness needs. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define FIXED 0x70000000UL

uint64_t last_result;

/* Sites in the shapes the patcher meets: glibc wrapper, raw Rust/rustix
 * site with a rip-relative store after the syscall, xmm and red zone users. */
__asm__(
    ".intel_syntax noprefix\n"
    ".text\n"
    ".p2align 4\n"
    ".globl site_getpid\n"
    "site_getpid:\n"
    "  mov eax, 39\n"
    ".globl site_getpid_sys\n"
    "site_getpid_sys:\n"
    "  syscall\n"
    "  cmp rax, -4095\n"
    "  jae 1f\n"
    "  ret\n"
    "1: neg eax\n"
    "  ret\n"
    ".p2align 4\n"
    ".globl site_rip\n"
    "site_rip:\n"
    "  mov eax, 39\n"
    ".globl site_rip_sys\n"
    "site_rip_sys:\n"
    "  syscall\n"
    "  mov [rip + last_result], rax\n"
    "  ret\n"
    ".p2align 4\n"
    ".globl site_clock\n"
    "site_clock:\n"
    "  mov eax, 228\n"
    ".globl site_clock_sys\n"
    "site_clock_sys:\n"
    "  syscall\n"
    "  cmp rax, -4095\n"
    "  ret\n"
    ".p2align 4\n"
    ".globl site_xmm\n"
    "site_xmm:\n"
    "  movq xmm7, rdi\n"
    "  mov eax, 39\n"
    ".globl site_xmm_sys\n"
    "site_xmm_sys:\n"
    "  syscall\n"
    "  cmp rax, -4095\n"
    "  movq rax, xmm7\n"
    "  ret\n"
    ".p2align 4\n"
    ".globl site_redzone\n"
    "site_redzone:\n"
    "  mov [rsp - 8], rdi\n"
    "  mov [rsp - 128], rsi\n"
    "  mov eax, 39\n"
    ".globl site_redzone_sys\n"
    "site_redzone_sys:\n"
    "  syscall\n"
    "  cmp rax, -4095\n"
    "  mov rax, [rsp - 8]\n"
    "  xor rax, [rsp - 128]\n"
    "  ret\n"
    /* An rdtsc site (Anchor::Rdtsc): rcx, r10, r11, rsi and the carry flag
     * set before must survive the rdtsc (it writes only edx:eax); the
     * region is the rdtsc and the store of rcx. */
    ".p2align 4\n"
    ".globl site_rdtsc\n"
    "site_rdtsc:\n"
    "  mov r8, rdi\n"
    "  mov rcx, 0x1111111111111111\n"
    "  mov r10, 0x3333333333333333\n"
    "  mov r11, 0x2222222222222222\n"
    "  mov rsi, 0x4444444444444444\n"
    "  mov rax, -1\n"
    "  mov rdx, -1\n"
    "  stc\n"
    ".globl site_rdtsc_sys\n"
    "site_rdtsc_sys:\n"
    "  rdtsc\n"
    "  mov [r8], rcx\n"
    "  setc byte ptr [r8 + 8]\n"
    "  mov [r8 + 16], r10\n"
    "  mov [r8 + 24], r11\n"
    "  mov [r8 + 32], rsi\n"
    "  mov [r8 + 40], rax\n"
    "  mov [r8 + 48], rdx\n"
    "  ret\n"
    ".att_syntax\n");

long site_getpid(void);
long site_rip(void);
long site_clock(long clk, struct timespec *ts);
uint64_t site_xmm(uint64_t v);
uint64_t site_redzone(uint64_t a, uint64_t b);
void site_rdtsc(uint64_t out[7]);
extern char site_getpid_sys[], site_rip_sys[], site_clock_sys[], site_xmm_sys[], site_redzone_sys[],
    site_rdtsc_sys[];

struct site { const char *name; void *fn; char *sys; };
static const struct site sites[] = {
    {"getpid", (void *)site_getpid, site_getpid_sys},
    {"rip", (void *)site_rip, site_rip_sys},
    {"clock", (void *)site_clock, site_clock_sys},
    {"xmm", (void *)site_xmm, site_xmm_sys},
    {"redzone", (void *)site_redzone, site_redzone_sys},
    {"rdtsc", (void *)site_rdtsc, site_rdtsc_sys},
};
#define NSITES (sizeof sites / sizeof sites[0])

struct init_params { uint32_t protocol_version, size; uint64_t hook_entry, syscall_hook, reply_area, reply_area_size, reply_flags; };
struct locals { uint64_t saved_rsp, alt_stack_top, buffer, buffer_size; int32_t desched_fd; uint32_t flags; uint64_t reserved[3]; };
struct bufhdr { uint32_t magic, capacity, used, num_records, in_flight, abort_commit, aborted, force_bail; };
struct rec { uint32_t nr, out_len; int64_t result; uint64_t out_addr; };
static uint64_t buffer[8192];

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "harness: %s:%d: %s\n", __FILE__, __LINE__, #c); exit(1); } } while (0)

static int unhex(const char *s, uint8_t *out, size_t max) {
    size_t n = strlen(s) / 2;
    if (n > max) return -1;
    for (size_t i = 0; i < n; i++) { unsigned v; sscanf(s + 2 * i, "%2x", &v); out[i] = (uint8_t)v; }
    return (int)n;
}

static void describe(void) {
    for (size_t i = 0; i < NSITES; i++) {
        const uint8_t *p = sites[i].fn;
        printf("%s %lx %lx ", sites[i].name, (unsigned long)p, (unsigned long)sites[i].sys);
        for (int j = 0; j < 64; j++) printf("%02x", p[j]);
        printf("\n");
    }
}

static uint32_t records(void) { return ((struct bufhdr *)buffer)->num_records; }

static uint64_t raw_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC_RAW, &t);
    return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

/* The rdtsc site: registers and flags kept, edx:eax with zero upper halves;
 * through the hook, the synthesized TSC (CLOCK_MONOTONIC_RAW in ns). */
static void call_rdtsc(int buffered) {
    uint64_t out[7] = {0};
    uint64_t t0 = raw_ns();
    site_rdtsc(out);
    uint64_t t1 = raw_ns();
    CHECK(out[0] == 0x1111111111111111ULL && (out[1] & 0xff) == 1);
    CHECK(out[2] == 0x3333333333333333ULL && out[3] == 0x2222222222222222ULL);
    CHECK(out[4] == 0x4444444444444444ULL);
    CHECK(out[5] >> 32 == 0 && out[6] >> 32 == 0);
    uint64_t tsc = out[6] << 32 | out[5];
    if (buffered) CHECK(t0 <= tsc && tsc <= t1);
}

static void call_sites(int buffered) {
    struct locals *tl = (struct locals *)(FIXED + 0x1000);
    tl->buffer = buffered ? (uint64_t)buffer : 0;
    uint32_t before = records();
    long pid = getpid();

    CHECK(site_getpid() == pid);
    last_result = 0;
    CHECK(site_rip() == pid && last_result == (uint64_t)pid);
    struct timespec ts = {0};
    CHECK(site_clock(CLOCK_MONOTONIC, &ts) == 0 && (ts.tv_sec || ts.tv_nsec));
    CHECK(site_xmm(0x1122334455667788ULL) == 0x1122334455667788ULL);
    CHECK(site_redzone(0xabcdef, 0x123456) == (0xabcdef ^ 0x123456));
    call_rdtsc(buffered);
    /* rsp came back exactly: the frame above is intact (we returned here). */
    CHECK(records() == before + (buffered ? 6 : 0));
    if (buffered) {
        struct rec *r = (struct rec *)((struct bufhdr *)buffer + 1);
        CHECK(r->nr == 39 && r->result == pid);
    }
}

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

/* Nanoseconds per call of `f` (getpid-like), resetting the buffer as the
 * recorder's flush would. A measurement, not a check. */
static double per_call(long (*f)(void), int buffered) {
    struct locals *tl = (struct locals *)(FIXED + 0x1000);
    struct bufhdr *h = (struct bufhdr *)buffer;
    tl->buffer = buffered ? (uint64_t)buffer : 0;
    enum { N = 200000 };
    double t0 = now_ns();
    for (int i = 0; i < N; i++) {
        f();
        if (h->used > 60000) { h->used = 0; h->num_records = 0; }
    }
    return (now_ns() - t0) / N;
}

static long native_getpid(void) { return syscall(39); }

static long patched_rdtsc(void) {
    uint64_t out[7];
    site_rdtsc(out);
    return (long)out[5];
}

static long native_rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (long)lo;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "describe") == 0) { describe(); return 0; }
    CHECK(argc == 4 && strcmp(argv[1], "run") == 0);

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
    uint8_t *alt = mmap(NULL, 0x10000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(alt != MAP_FAILED);
    struct locals *tl = (struct locals *)(FIXED + 0x1000);
    tl->alt_stack_top = (uint64_t)(alt + 0x10000);
    tl->buffer_size = sizeof buffer;
    tl->desched_fd = -1;
    struct bufhdr *h = (struct bufhdr *)buffer;
    h->magic = 0x42535252;
    h->capacity = sizeof buffer - sizeof *h;

    void *lib = dlopen(argv[2], RTLD_NOW);
    if (!lib) { fprintf(stderr, "harness: %s\n", dlerror()); return 1; }
    struct init_params *ip = dlsym(lib, "rrtest_init_params");
    CHECK(ip && ip->hook_entry);

    /* Unpatched first: the sites work as plain code. */
    call_sites(0);

    FILE *plan = fopen(argv[3], "r");
    CHECK(plan);
    char name[64], stub_hex[1024], patch_hex[64];
    unsigned long stub_addr, slot_off, patch_addr;
    int planned = 0;
    while (fscanf(plan, "%63s %lx %lx %1023s %lx %63s", name, &stub_addr, &slot_off, stub_hex, &patch_addr, patch_hex) == 6) {
        uint8_t stub[512], patch[32];
        int n = unhex(stub_hex, stub, sizeof stub), m = unhex(patch_hex, patch, sizeof patch);
        CHECK(n > 0 && m >= 5 && slot_off + 8 <= (unsigned long)n);
        memcpy(stub + slot_off, &ip->hook_entry, 8);
        uint8_t *s = mmap((void *)(stub_addr & ~0xfffUL), 0x1000, PROT_READ | PROT_WRITE | PROT_EXEC,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        CHECK(s != MAP_FAILED);
        memcpy((void *)stub_addr, stub, n);
        uintptr_t pg = patch_addr & ~0xfffUL;
        CHECK(mprotect((void *)pg, 0x2000, PROT_READ | PROT_WRITE | PROT_EXEC) == 0);
        memcpy((void *)patch_addr, patch, m);
        planned++;
    }
    CHECK(planned == (int)NSITES);

    call_sites(1);  /* through the hook, recorded */
    call_sites(0);  /* the hook bails: the stub's own syscall runs */
    call_sites(1);
    CHECK(h->in_flight == 0 && h->aborted == 0);
    printf("harness: ok, %u records\n", records());
    double native = per_call(native_getpid, 0);
    double bail = per_call(site_getpid, 0);
    double buffered = per_call(site_getpid, 1);
    printf("bench: getpid ns/call: native %.1f, patched+buffered %.1f, patched+bail %.1f\n",
           native, buffered, bail);
    printf("bench: rdtsc ns/call: native %.1f, patched+buffered %.1f, patched+bail %.1f\n",
           per_call(native_rdtsc, 0), per_call(patched_rdtsc, 1), per_call(patched_rdtsc, 0));
    return 0;
}
