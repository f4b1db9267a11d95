/* The least a ptrace stop costs on this machine: a child makes getppid in
 * a loop under PTRACE_SYSCALL; its tracer, per stop, waits for it, reads
 * its registers (PTRACE_GETREGS) and resumes it. That is the round trip
 * every stop of the recorder makes, with none of the recorder's own work.
 * Both run on one CPU, as the recorder runs a recording's threads (pass
 * "spread" to leave them to the kernel's placement).
 *
 * "handoff": the least a hand-off between two threads costs when each
 * switch is a ptrace stop, as the recorder's held futex waits make them:
 * two threads of the child make getppid in a loop; the tracer resumes them
 * in turn, one at a time, and per stop reads the registers, reads a page
 * of the stopped thread's memory (its syscall buffer's header and first
 * records), writes the registers back (a held wait let go is skipped so)
 * and writes 8 bytes (the buffer emptied): the syscalls a held wait's stop
 * cannot do without. The rest of a recording's cost per stop is its own.
 *
 * Usage: ptrace-floor [STOPS] [spread | handoff]   (STOPS: default 100000)
 * Prints: "<stops> stops in <seconds> s: <microseconds> us per stop".
 * Built and run by scripts/bench-threads.sh; not a test fixture. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long per_thread;

/* Forks a child that asks to be traced, stops, then runs `body`(`arg`) and
 * exits 0; waits for its stop and sets `options` on it. Returns its pid,
 * or -1 (said on stderr). */
static pid_t traced_child(void (*body)(long), long arg, long options) {
    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return -1;
    }
    if (child == 0) {
        if (ptrace(PTRACE_TRACEME, 0, 0, 0) != 0)
            _exit(3);
        raise(SIGSTOP);
        body(arg);
        _exit(0);
    }
    int status;
    if (waitpid(child, &status, 0) != child || !WIFSTOPPED(status)) {
        fprintf(stderr, "ptrace-floor: the child did not stop\n");
        return -1;
    }
    if (ptrace(PTRACE_SETOPTIONS, child, 0, options) != 0) {
        perror("PTRACE_SETOPTIONS");
        return -1;
    }
    return child;
}

/* The single mode's child: `calls` getppid calls. */
static void getppid_calls(long calls) {
    for (long i = 0; i < calls; i++)
        syscall(SYS_getppid);
}

static void *getppid_loop(void *arg) {
    (void)arg;
    for (long i = 0; i < per_thread; i++)
        syscall(SYS_getppid);
    return NULL;
}

/* The "handoff" mode's child: two threads making getppid calls. */
static void two_threads(long unused) {
    (void)unused;
    pthread_t t;
    if (pthread_create(&t, NULL, getppid_loop, NULL) != 0)
        _exit(4);
    getppid_loop(NULL);
    pthread_join(t, NULL);
}

/* The "handoff" mode (see the top): returns the process's exit status. */
static int handoff(long stops_wanted) {
    /* Entry and exit stops, two threads. */
    per_thread = stops_wanted / 4 + 1;
    pid_t child = traced_child(two_threads, 0,
                               PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL | PTRACE_O_TRACECLONE);
    if (child < 0)
        return 1;
    int status;
    /* Run the main thread to its clone event: the second thread's id. */
    pid_t tids[2] = {child, 0};
    if (ptrace(PTRACE_CONT, child, 0, 0) != 0) {
        perror("PTRACE_CONT");
        return 1;
    }
    while (tids[1] == 0) {
        pid_t w = waitpid(-1, &status, __WALL);
        if (w < 0) {
            perror("waitpid");
            return 1;
        }
        if (w == child && status >> 16 == PTRACE_EVENT_CLONE) {
            unsigned long msg;
            ptrace(PTRACE_GETEVENTMSG, child, 0, &msg);
            tids[1] = (pid_t)msg;
        } else if (w == child && WIFSTOPPED(status)) {
            ptrace(PTRACE_CONT, child, 0, 0);
        } else {
            fprintf(stderr, "ptrace-floor: no thread was made\n");
            return 1;
        }
    }
    if (waitpid(tids[1], &status, __WALL) != tids[1]) {
        perror("waitpid (the new thread)");
        return 1;
    }
    static char page[4096];
    struct user_regs_struct regs;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long stops = 0;
    int ended[2] = {0, 0};
    for (int cur = 0; !(ended[0] && ended[1]); cur ^= 1) {
        pid_t t = tids[cur];
        if (ended[cur])
            continue;
        if (ptrace(PTRACE_SYSCALL, t, 0, 0) != 0) {
            perror("PTRACE_SYSCALL");
            return 1;
        }
        if (waitpid(t, &status, __WALL) != t) {
            perror("waitpid");
            return 1;
        }
        if (WIFEXITED(status) || WIFSIGNALED(status) || (WIFSTOPPED(status) && WSTOPSIG(status) != (SIGTRAP | 0x80))) {
            /* Its end (or the join's futex, the exit's stops): done. */
            ended[cur] = 1;
            continue;
        }
        if (ptrace(PTRACE_GETREGS, t, 0, &regs) != 0) {
            perror("PTRACE_GETREGS");
            return 1;
        }
        unsigned long base = regs.rsp & ~4095UL;
        struct iovec local = {page, sizeof page}, remote = {(void *)base, sizeof page};
        if (process_vm_readv(child, &local, 1, &remote, 1, 0) != (ssize_t)sizeof page) {
            perror("process_vm_readv");
            return 1;
        }
        if (ptrace(PTRACE_SETREGS, t, 0, &regs) != 0) {
            perror("PTRACE_SETREGS");
            return 1;
        }
        /* 8 bytes written back as they were. */
        struct iovec l8 = {page + (regs.rsp & 4095UL & ~7UL), 8}, r8 = {(void *)(regs.rsp & ~7UL), 8};
        if (process_vm_writev(child, &l8, 1, &r8, 1, 0) != 8) {
            perror("process_vm_writev");
            return 1;
        }
        stops++;
        if (stops >= stops_wanted)
            break;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    kill(child, SIGKILL);
    /* Both threads reaped (the second one, traced, by its tracer first). */
    while (waitpid(-1, &status, __WALL) > 0)
        ;
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%ld stops in %.3f s: %.2f us per stop\n", stops, s, s / (double)stops * 1e6);
    return 0;
}

int main(int argc, char **argv) {
    long stops_wanted = argc > 1 ? atol(argv[1]) : 100000;
    int spread = argc > 2 && strcmp(argv[2], "spread") == 0;
    int hand_off = argc > 2 && strcmp(argv[2], "handoff") == 0;
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
    if (hand_off)
        return handoff(stops_wanted);
    /* Two stops (entry and exit) per call. */
    pid_t child = traced_child(getppid_calls, stops_wanted / 2,
                               PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL);
    if (child < 0)
        return 1;
    int status;
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
