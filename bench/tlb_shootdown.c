/* The cost of a TLB flush that must reach another CPU, on this machine.
 *
 * One thread on CPU 0 writes a page and drops it (madvise MADV_DONTNEED), which flushes the
 * page's TLB entry on every CPU that runs the process; a second thread of the same process is on
 * CPU 1, either spinning (the flush is an IPI to it and a wait for its answer) or asleep (its
 * CPU idle, lazy: no IPI). The difference per drop is what a remote flush costs the flusher:
 * what reclaim pays for each page it unmaps to write while another CPU runs the unmapped
 * process (machine.cost.tlb_shootdown; bench/kernel_truth.py reclaim-cost runs it).
 *
 *     gcc -O2 -pthread -o tlb_shootdown tlb_shootdown.c && ./tlb_shootdown [rounds]
 *
 * Prints one line a round: idle us, busy us, difference us.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static volatile int stop, spin;

static void pin(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

static void *other(void *arg) {
    (void)arg;
    pin(1);
    while (!stop)
        if (!spin)
            usleep(1000);
    return NULL;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static double per_drop_us(char *p, int n) {
    double t0 = now();
    for (int i = 0; i < n; i++) {
        p[0] = 1;
        madvise(p, 4096, MADV_DONTNEED);
    }
    return (now() - t0) / n * 1e6;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 5, n = 20000;
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
        fprintf(stderr, "tlb_shootdown: needs two CPUs\n");
        return 2;
    }
    pin(0);
    char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    pthread_t t;
    pthread_create(&t, NULL, other, NULL);
    for (int r = 0; r < rounds; r++) {
        spin = 0;
        usleep(20000);
        double idle = per_drop_us(p, n);
        spin = 1;
        usleep(20000);
        double busy = per_drop_us(p, n);
        printf("%.2f %.2f %.2f\n", idle, busy, busy - idle);
    }
    stop = 1;
    pthread_join(t, NULL);
    return 0;
}
