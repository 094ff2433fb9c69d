/* slowdisk: one file, "disk", served by a single-threaded FUSE daemon that sleeps
 * LATENCY + bytes/BANDWIDTH for every read or write before doing it on a backing file:
 * a FIFO server with a fixed per-request latency, like vmexp's SwapDevice.
 * usage: slowdisk BACKING LATENCY_NS BANDWIDTH_BPS MOUNTPOINT -s -f [-o ...] */
#define FUSE_USE_VERSION 31
#include <fuse.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int fd = -1;
static off_t size;
static long long latency_ns, bandwidth;
static long long nreads, nwrites, rbytes, wbytes;

static void pause_for(size_t bytes) {
    long long ns = latency_ns + (long long)bytes * 1000000000LL / bandwidth;
    struct timespec t = {ns / 1000000000LL, ns % 1000000000LL};
    while (nanosleep(&t, &t) == -1 && errno == EINTR) {}
}

static void *sd_init(struct fuse_conn_info *conn, struct fuse_config *cfg) {
    cfg->direct_io = 1;
    cfg->attr_timeout = 3600;
    cfg->entry_timeout = 3600;
    conn->max_write = 1 << 20;
    return NULL;
}

static int sd_getattr(const char *path, struct stat *st, struct fuse_file_info *fi) {
    (void)fi;
    memset(st, 0, sizeof *st);
    if (strcmp(path, "/") == 0) { st->st_mode = S_IFDIR | 0755; st->st_nlink = 2; return 0; }
    if (strcmp(path, "/disk") != 0) return -ENOENT;
    st->st_mode = S_IFREG | 0600; st->st_nlink = 1; st->st_size = size;
    st->st_blksize = 4096; st->st_blocks = size / 512;
    return 0;
}

static int sd_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags) {
    (void)off; (void)fi; (void)flags;
    if (strcmp(path, "/") != 0) return -ENOENT;
    fill(buf, ".", NULL, 0, 0); fill(buf, "..", NULL, 0, 0); fill(buf, "disk", NULL, 0, 0);
    return 0;
}

static int sd_open(const char *path, struct fuse_file_info *fi) {
    if (strcmp(path, "/disk") != 0) return -ENOENT;
    fi->direct_io = 1;
    return 0;
}

static int sd_read(const char *path, char *buf, size_t n, off_t off, struct fuse_file_info *fi) {
    (void)path; (void)fi;
    pause_for(n);
    nreads++; rbytes += n;
    ssize_t r = pread(fd, buf, n, off);
    return r < 0 ? -errno : (int)r;
}

static int sd_write(const char *path, const char *buf, size_t n, off_t off, struct fuse_file_info *fi) {
    (void)path; (void)fi;
    pause_for(n);
    nwrites++; wbytes += n;
    ssize_t r = pwrite(fd, buf, n, off);
    return r < 0 ? -errno : (int)r;
}

static int sd_fsync(const char *path, int d, struct fuse_file_info *fi) { (void)path; (void)d; (void)fi; return 0; }

static void sd_destroy(void *p) {
    (void)p;
    fprintf(stderr, "slowdisk: %lld reads (%lld bytes), %lld writes (%lld bytes)\n", nreads, rbytes, nwrites, wbytes);
}

static const struct fuse_operations ops = {
    .init = sd_init, .getattr = sd_getattr, .readdir = sd_readdir, .open = sd_open,
    .read = sd_read, .write = sd_write, .fsync = sd_fsync, .destroy = sd_destroy,
};

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: slowdisk BACKING LATENCY_NS BANDWIDTH MOUNTPOINT [fuse options]\n"); return 2; }
    fd = open(argv[1], O_RDWR);
    if (fd < 0) { perror(argv[1]); return 1; }
    struct stat st; fstat(fd, &st); size = st.st_size;
    latency_ns = atoll(argv[2]); bandwidth = atoll(argv[3]);
    argv[3] = argv[0];
    return fuse_main(argc - 3, argv + 3, &ops, NULL);
}
