/* Replays one process of a vmexp trace against the machine's real glibc malloc.
 *
 * Usage: replayer [-m MMAP_THRESHOLD] [-t TRIM_THRESHOLD] [-p TOP_PAD] [-x MMAP_MAX] [-S] RECORDS
 *
 * RECORDS is the binary file vmexp/validate/real.py writes: the magic
 * "VMEXPRP1", the number of records, the number of distinct block ids, then
 * per operation six little-endian int64: global op index, opcode (the codes
 * of vmexp/workload/ops.py), dense block id, and up to three arguments.
 * A compute record (only the kernel validation writes them) spins for its
 * duration in ns: the kernel's timers (the memory cgroup statistics flush,
 * writeback completions) see the trace's time pass as the simulator does.
 *
 * The point of the program is to measure glibc's heap without disturbing it,
 * so it never allocates memory of its own: no stdio (its buffers come from
 * malloc), no printf; output is formatted by hand into static buffers and
 * written with write(2). The records file is mapped read-only (never copied:
 * when it lies on tmpfs its pages stay charged to whoever wrote it, not to
 * the memory cgroup the replay may run in, see vmexp/validate/kernel.py), the
 * block tables live in bss, and every page the program itself will use
 * during the replay is faulted in before the first getrusage, so the
 * minor-fault count of the replay loop is the allocator's and the trace's
 * touches only.
 *
 * -S stops the process (SIGSTOP) right before the replay loop and right
 * after it, so that a harness can read the memory cgroup's charge at both
 * points (what the process costs besides the trace's pages); it resumes on
 * SIGCONT.
 *
 * Each operation is announced by lseek(-1, INDEX, SEEK_SET), which fails at
 * once with EBADF and costs no memory, so that strace attributes every
 * brk/mmap/munmap/mremap to its operation. lseek(-2, 0, SEEK_SET) marks the
 * start of the replay and lseek(-3, N, SEEK_SET) its end.
 *
 * Output on stdout: "key value" lines, the ten mallinfo2 fields, then minflt,
 * majflt and ops. Errors in the trace at run time (free of a block that is
 * not live, a touch outside its block) print "op INDEX: message" on stderr
 * and exit with status 3; usage errors exit with status 2. As in the
 * simulator, a block freed before (a double free, a use after free) is told
 * from one the trace never allocated (an invalid or wild pointer).
 *
 * An allocation that fails is what the simulator (vmexp/sim.py) makes of it:
 * the program is taken to check for NULL, so the touches of an id whose
 * malloc, calloc or realloc(NULL, n) failed are skipped, its free is
 * free(NULL) and its id may be allocated again; a realloc(p, n) that fails
 * leaves p at its old size, and touches past that size are cut to it
 * ((live[id] & STATE) == SHORT marks such a block).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum { OP_MALLOC = 0, OP_CALLOC = 1, OP_REALLOC = 2, OP_FREE = 3, OP_TOUCH = 4, OP_COMPUTE = 5 };
/* live[id] & STATE: not allocated (0, as bss starts), allocated (its pointer may be NULL: a
 * failed allocation), or allocated but left at its old size by a failed realloc. WAS_FREED:
 * the id was freed at least once (vmexp/sim.py's Process.freed), so that an id not allocated
 * now is told apart: freed before (a double free, a use after free) or never (a bad pointer). */
enum { DEAD = 0, LIVE = 1, SHORT = 2, STATE = 3, WAS_FREED = 4 };

#define REC 6
#define MAX_IDS (1L << 22)

static const int64_t *recs;
/* bss only costs the pages that are used; the used parts are pre-touched. */
static char *ptrs[MAX_IDS];
static uint64_t sizes[MAX_IDS];
static unsigned char live[MAX_IDS];
static char maps_buf[1 << 17];
static char out_buf[4096];
static size_t out_len;
static sigjmp_buf probe_jmp;
static volatile unsigned char sink;

static void out_str(const char *s) {
    size_t n = strlen(s);
    if (out_len + n < sizeof out_buf) {
        memcpy(out_buf + out_len, s, n);
        out_len += n;
    }
}

static void out_i64(int64_t v) {
    char tmp[24];
    int i = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[i++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) tmp[i++] = '-';
    while (i) {
        char c[2] = {tmp[--i], 0};
        out_str(c);
    }
}

static void out_kv(const char *key, int64_t v) {
    out_str(key);
    out_str(" ");
    out_i64(v);
    out_str("\n");
}

static void flush_to(int fd) {
    size_t off = 0;
    while (off < out_len) {
        ssize_t w = write(fd, out_buf + off, out_len - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
    out_len = 0;
}

static _Noreturn void die(int status, int64_t op, const char *msg) {
    out_len = 0;
    if (op >= 0) {
        out_str("op ");
        out_i64(op);
        out_str(": ");
    }
    out_str(msg);
    out_str("\n");
    flush_to(2);
    _exit(status);
}

static int parse_i64(const char *s, int64_t *v) {
    int64_t r = 0;
    if (!*s) return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || r > (INT64_MAX - 9) / 10) return 0;
        r = r * 10 + (*s - '0');
    }
    *v = r;
    return 1;
}

static void on_probe_fault(int sig) {
    (void)sig;
    siglongjmp(probe_jmp, 1);
}

static int in_range(uintptr_t a, const void *base, size_t len) {
    return a >= (uintptr_t)base && a < (uintptr_t)base + len;
}

static uintptr_t hex(const char **p) {
    uintptr_t v = 0;
    for (;; (*p)++) {
        char c = **p;
        if (c >= '0' && c <= '9') v = v * 16 + (uintptr_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v = v * 16 + (uintptr_t)(c - 'a' + 10);
        else return v;
    }
}

/* Reads (and for a writable mapping writes back) one byte per page of
 * [start, end); a fault ends the probe of this range. */
static void probe_range(uintptr_t start, uintptr_t end, int writable, long page) {
    volatile uintptr_t a = start; /* volatile: live across sigsetjmp */
    if (sigsetjmp(probe_jmp, 1)) return;
    for (; a < end; a += (uintptr_t)page) {
        if (in_range(a, ptrs, sizeof ptrs) || in_range(a, sizes, sizeof sizes) || in_range(a, live, sizeof live))
            continue;
        volatile unsigned char *q = (volatile unsigned char *)a;
        unsigned char v = *q;
        if (writable) *q = v;
    }
}

/* Fault in every page of every mapping the process has now (its code, libc's
 * code and data, ld.so, the stack), except the unused parts of the big bss
 * tables, so that no fault of the replay loop is the program's own: libc's
 * malloc and memset code and malloc's static state (main_arena, mp_) would
 * otherwise fault on first use. Writable pages are written back with their
 * own value, which breaks copy-on-write now rather than during the replay.
 * A page that cannot be read (a file mapping beyond the end of its file)
 * ends the probe of that mapping. */
static void pretouch_mappings(long page) {
    int fd = open("/proc/self/maps", O_RDONLY);
    size_t len = 0;
    if (fd < 0) return;
    for (;;) {
        ssize_t r = read(fd, maps_buf + len, sizeof maps_buf - 1 - len);
        if (r <= 0) break;
        len += (size_t)r;
    }
    close(fd);
    maps_buf[len] = 0;

    struct sigaction sa, old_segv, old_bus;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_probe_fault;
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);

    const char *p = maps_buf;
    while (*p) {
        uintptr_t start = hex(&p);
        p++; /* '-' */
        uintptr_t end = hex(&p);
        p++; /* ' ' */
        int readable = p[0] == 'r', writable = p[1] == 'w';
        const char *eol = strchr(p, '\n');
        if (!eol) eol = p + strlen(p);
        const char *name = eol;
        while (name > p && name[-1] != ' ') name--;
        /* [vvar] and friends may fault on read; [vsyscall] is not ours. */
        int special = name[0] == '[' && name[1] == 'v';
        if (readable && !special) probe_range(start, end, writable, page);
        p = *eol ? eol + 1 : eol;
    }
    sigaction(SIGSEGV, &old_segv, NULL);
    sigaction(SIGBUS, &old_bus, NULL);
}

/* CLOCK_MONOTONIC in ns, from the vDSO: no syscall, no memory of its own. */
static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Grow the stack now by more than malloc, memset and the loop ever need. */
static void __attribute__((noinline)) pretouch_stack(void) {
    volatile char pad[256 * 1024];
    for (size_t i = 0; i < sizeof pad; i += 1024) pad[i] = 0;
}

int main(int argc, char **argv) {
    int64_t opt_val[4];
    int opt_set[4] = {0, 0, 0, 0};
    static const int opt_param[4] = {M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX};
    static const char opt_flag[4] = {'m', 't', 'p', 'x'};
    const char *path = NULL;
    int stop = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int k = -1;
        if (a[0] == '-' && a[1] && !a[2])
            for (int j = 0; j < 4; j++)
                if (a[1] == opt_flag[j]) k = j;
        if (k >= 0) {
            if (i + 1 >= argc || !parse_i64(argv[i + 1], &opt_val[k]) || opt_val[k] > INT32_MAX)
                die(2, -1, "replayer: an option value must be an integer between 0 and 2^31-1");
            opt_set[k] = 1;
            i++;
        } else if (a[0] == '-' && a[1] == 'S' && !a[2]) {
            stop = 1;
        } else if (!path && a[0] != '-') {
            path = a;
        } else {
            die(2, -1, "usage: replayer [-m MMAP_THRESHOLD] [-t TRIM_THRESHOLD] [-p TOP_PAD] [-x MMAP_MAX] [-S] RECORDS");
        }
    }
    if (!path) die(2, -1, "usage: replayer [-m MMAP_THRESHOLD] [-t TRIM_THRESHOLD] [-p TOP_PAD] [-x MMAP_MAX] [-S] RECORDS");

    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) die(2, -1, "replayer: cannot open the records file");
    if (st.st_size < 24) die(2, -1, "replayer: not a records file (bad magic)");
    const int64_t *head = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (head == MAP_FAILED) die(2, -1, "replayer: cannot map the records file");
    close(fd);
    if (memcmp(head, "VMEXPRP1", 8) != 0) die(2, -1, "replayer: not a records file (bad magic)");
    int64_t n = head[1], nids = head[2];
    if (n < 0 || nids < 0 || nids > MAX_IDS) die(2, -1, "replayer: too many block ids for this replayer (4194304 at most)");
    if ((uint64_t)n > ((uint64_t)st.st_size - 24) / (REC * sizeof(int64_t)))
        die(2, -1, "replayer: the records file is truncated");
    recs = head + 3;

    /* Transparent huge pages would turn 512 first touches into one fault. */
    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);

    for (int k = 0; k < 4; k++)
        if (opt_set[k] && mallopt(opt_param[k], (int)opt_val[k]) != 1) die(2, -1, "replayer: mallopt refused a value");

    memset(ptrs, 0, (size_t)nids * sizeof ptrs[0]);
    memset(sizes, 0, (size_t)nids * sizeof sizes[0]);
    memset(live, 0, (size_t)nids);
    long page = sysconf(_SC_PAGESIZE);
    pretouch_stack();
    pretouch_mappings(page);
    (void)now_ns(); /* fault in the vDSO's data pages, which a compute record reads */

    struct rusage ru0, ru1;
    if (stop) raise(SIGSTOP);
    getrusage(RUSAGE_SELF, &ru0);
    lseek(-2, 0, SEEK_SET);
    for (int64_t i = 0; i < n; i++) {
        const int64_t *r = &recs[i * REC];
        int64_t op = r[0], id = r[2];
        if (r[1] != OP_COMPUTE && (id < 0 || id >= nids)) die(2, op, "block id out of range in the records file");
        lseek(-1, op, SEEK_SET);
        switch (r[1]) {
        case OP_MALLOC:
            if ((live[id] & STATE) && ptrs[id]) die(3, op, "malloc of a block id that is still allocated");
            ptrs[id] = malloc((size_t)r[3]);
            sizes[id] = ptrs[id] ? (uint64_t)r[3] : 0;
            live[id] = (live[id] & WAS_FREED) | LIVE;
            break;
        case OP_CALLOC:
            if ((live[id] & STATE) && ptrs[id]) die(3, op, "calloc of a block id that is still allocated");
            ptrs[id] = calloc((size_t)r[3], (size_t)r[4]);
            sizes[id] = ptrs[id] ? (uint64_t)r[3] * (uint64_t)r[4] : 0;
            live[id] = (live[id] & WAS_FREED) | LIVE;
            break;
        case OP_REALLOC: {
            /* realloc of an id that is not live is realloc(NULL, n): a malloc. */
            char *old = (live[id] & STATE) ? ptrs[id] : NULL;
            char *q = realloc(old, (size_t)r[3]);
            if (q || !old) { /* done, or a failed realloc(NULL, n): a failed malloc */
                ptrs[id] = q;
                sizes[id] = q ? (uint64_t)r[3] : 0;
                live[id] = (live[id] & WAS_FREED) | LIVE;
            } else if (r[3] == 0) { /* realloc(p, 0) frees p and returns NULL */
                ptrs[id] = NULL;
                sizes[id] = 0;
                live[id] = WAS_FREED;
            } else {
                live[id] = (live[id] & WAS_FREED) | SHORT; /* failed: p stays valid at its old size */
            }
            break;
        }
        case OP_FREE:
            if (!(live[id] & STATE)) {
                if (live[id] & WAS_FREED) die(3, op, "free of a block that is not allocated (it was freed: a double free)");
                die(3, op, "free of a block the trace never allocated (an invalid pointer)");
            }
            /* free(NULL) of a failed allocation frees nothing: the pointer stays NULL, so a second
             * free is free(NULL) again and a touch is skipped, as the simulator has it. */
            live[id] = ptrs[id] ? WAS_FREED : live[id];
            free(ptrs[id]);
            ptrs[id] = NULL;
            break;
        case OP_TOUCH: {
            if (!(live[id] & STATE)) {
                if (live[id] & WAS_FREED) die(3, op, "touch of a block that is not allocated (it was freed: a use after free)");
                die(3, op, "touch of a block the trace never allocated (a wild pointer)");
            }
            if (!ptrs[id]) break; /* its allocation failed: the program checked for NULL */
            uint64_t off = (uint64_t)r[3], size = sizes[id];
            uint64_t len = r[4] < 0 ? (off <= size ? size - off : 0) : (uint64_t)r[4];
            if ((live[id] & STATE) == SHORT && (off > size || len > size - off)) { /* cut to the old size */
                off = off < size ? off : size;
                len = len < size - off ? len : size - off;
            }
            if (off > size || len > size - off) die(3, op, "touch outside the block");
            char *p = ptrs[id] + off, *e = p + len;
            if (len == 0) break;
            if (r[5]) {
                memset(p, 0x5a, len);
            } else {
                /* One load per page: the first byte, then each page start. */
                uintptr_t a = (uintptr_t)p;
                while (a < (uintptr_t)e) {
                    sink = *(volatile unsigned char *)a;
                    a = (a & ~(uintptr_t)(page - 1)) + (uintptr_t)page;
                }
            }
            break;
        }
        case OP_COMPUTE: { /* CPU work: spin on the clock for r[3] ns */
            int64_t until = now_ns() + r[3];
            while (now_ns() < until) {
            }
            break;
        }
        default:
            die(2, op, "unknown opcode in the records file");
        }
    }
    lseek(-3, n, SEEK_SET);
    getrusage(RUSAGE_SELF, &ru1);

    struct mallinfo2 mi = mallinfo2();
    out_kv("arena", (int64_t)mi.arena);
    out_kv("ordblks", (int64_t)mi.ordblks);
    out_kv("smblks", (int64_t)mi.smblks);
    out_kv("hblks", (int64_t)mi.hblks);
    out_kv("hblkhd", (int64_t)mi.hblkhd);
    out_kv("usmblks", (int64_t)mi.usmblks);
    out_kv("fsmblks", (int64_t)mi.fsmblks);
    out_kv("uordblks", (int64_t)mi.uordblks);
    out_kv("fordblks", (int64_t)mi.fordblks);
    out_kv("keepcost", (int64_t)mi.keepcost);
    out_kv("minflt", ru1.ru_minflt - ru0.ru_minflt);
    out_kv("majflt", ru1.ru_majflt - ru0.ru_majflt);
    out_kv("ops", n);
    /* The loop's CPU time, user and system (the kernel's work for its faults is most of it). */
    struct timeval cpu0, cpu1;
    timeradd(&ru0.ru_utime, &ru0.ru_stime, &cpu0);
    timeradd(&ru1.ru_utime, &ru1.ru_stime, &cpu1);
    out_kv("cpu_us", (int64_t)(cpu1.tv_sec - cpu0.tv_sec) * 1000000 + (cpu1.tv_usec - cpu0.tv_usec));
    if (stop) raise(SIGSTOP);
    flush_to(1);
    return 0;
}
