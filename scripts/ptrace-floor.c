/* The least a ptrace stop costs on this machine: a child makes getppid in
 * a loop under PTRACE_SYSCALL; its tracer, per stop, waits for it, reads
 * its registers (PTRACE_GETREGS) and resumes it. That is the round trip
 * every stop of the recorder makes, with none of the recorder's own work.
 * Both run on one CPU, as the recorder runs a recording's threads (pass
 * "spread" to leave them to the kernel's placement).
 *
 * Usage: ptrace-floor [STOPS] [spread]   (STOPS: default 100000)
 * Prints: "<stops> stops in <seconds> s: <microseconds> us per stop".
 * Built and run by scripts/bench-threads.sh; not a test fixture. */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long stops_wanted = argc > 1 ? atol(argv[1]) : 100000;
    int spread = argc > 2 && strcmp(argv[2], "spread") == 0;
    if (stops_wanted < 2) {
        fprintf(stderr, "ptrace-floor: STOPS must be at least 2\n");
        return 2;
    }
    if (!spread) {
        cpu_set_t set;
        CPU_ZERO(&set);
        if (sched_getaffinity(0, sizeof set, &set) != 0) {
            perror("sched_getaffinity");
            return 1;
        }
        int cpu = 0;
        while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &set))
            cpu++;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0) {
            perror("sched_setaffinity");
            return 1;
        }
    }
    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 1;
    }
    if (child == 0) {
        if (ptrace(PTRACE_TRACEME, 0, 0, 0) != 0)
            _exit(3);
        raise(SIGSTOP);
        /* Two stops (entry and exit) per call. */
        for (long i = 0; i < stops_wanted / 2; i++)
            syscall(SYS_getppid);
        _exit(0);
    }
    int status;
    if (waitpid(child, &status, 0) != child || !WIFSTOPPED(status)) {
        fprintf(stderr, "ptrace-floor: the child did not stop\n");
        return 1;
    }
    if (ptrace(PTRACE_SETOPTIONS, child, 0, PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL) != 0) {
        perror("PTRACE_SETOPTIONS");
        return 1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long stops = 0;
    struct user_regs_struct regs;
    for (;;) {
        if (ptrace(PTRACE_SYSCALL, child, 0, 0) != 0) {
            perror("PTRACE_SYSCALL");
            return 1;
        }
        if (waitpid(child, &status, 0) != child) {
            perror("waitpid");
            return 1;
        }
        if (WIFEXITED(status) || WIFSIGNALED(status))
            break;
        if (ptrace(PTRACE_GETREGS, child, 0, &regs) != 0) {
            perror("PTRACE_GETREGS");
            return 1;
        }
        stops++;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "ptrace-floor: the child ended with status %#x\n", status);
        return 1;
    }
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%ld stops in %.3f s: %.2f us per stop\n", stops, s, s / (double)stops * 1e6);
    return 0;
}
